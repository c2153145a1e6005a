//! Estimated wait: the patient's position times the recent average handle time, shared among the nurses
//! staffing the queue. Unknown (None) while nobody staffs it, rather than a made-up number.

/// Seconds until a nurse is expected, rounded up to a whole minute so the estimate does not jitter.
pub fn estimate_wait(position: usize, staffed_nurses: usize, average_handle_ms: i64) -> Option<u64> {
    if staffed_nurses == 0 {
        return None;
    }
    // Patients ahead are served `staffed_nurses` at a time.
    let ahead = position.saturating_sub(1) as u64;
    let rounds = ahead.div_ceil(staffed_nurses as u64);
    let seconds = (rounds * average_handle_ms.max(0) as u64).div_ceil(1000);
    Some(seconds.div_ceil(60) * 60)
}

#[cfg(test)]
mod tests {
    use super::estimate_wait;

    #[test]
    fn first_in_line_with_a_nurse_waits_no_rounds() {
        assert_eq!(estimate_wait(1, 1, 300_000), Some(0));
    }

    #[test]
    fn more_nurses_shorten_the_wait() {
        assert_eq!(estimate_wait(3, 1, 300_000), Some(600));
        assert_eq!(estimate_wait(3, 2, 300_000), Some(300));
    }

    #[test]
    fn unknown_without_staff() {
        assert_eq!(estimate_wait(1, 0, 300_000), None);
    }
}
