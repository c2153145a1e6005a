//! Cheap checks on client SDP before it reaches the engine: size, shape and the number of media sections, so
//! garbage gets a precise error and a participant cannot make the SFU allocate without bound.

use super::MediaError;

pub fn check_offer(sdp: &str, max_bytes: usize, max_tracks: usize) -> Result<(), MediaError> {
    if sdp.len() > max_bytes {
        return Err(MediaError::SdpTooLarge(max_bytes));
    }
    if !sdp.starts_with("v=0") {
        return Err(MediaError::InvalidSdp("an SDP offer starts with v=0".into()));
    }
    let media = sdp.lines().filter(|l| l.starts_with("m=")).count();
    if media == 0 {
        return Err(MediaError::InvalidSdp("no media section".into()));
    }
    let data = sdp.lines().filter(|l| l.starts_with("m=application")).count();
    if media - data > max_tracks || data > 1 {
        return Err(MediaError::TooManyTracks(max_tracks));
    }
    if !sdp.lines().any(|l| l.starts_with("a=fingerprint:")) {
        return Err(MediaError::InvalidSdp("no DTLS fingerprint".into()));
    }
    Ok(())
}

pub fn check_candidate(candidate: &str) -> Result<(), MediaError> {
    // An empty candidate is the end-of-candidates marker.
    let ok = candidate.is_empty()
        || (candidate.len() <= 512
            && candidate.starts_with("candidate:")
            && candidate.split_whitespace().count() >= 8
            && candidate.is_ascii());
    if ok {
        Ok(())
    } else {
        Err(MediaError::InvalidCandidate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=fingerprint:sha-256 AA\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n";

    #[test]
    fn offers_are_bounded() {
        assert!(check_offer(OFFER, 4096, 3).is_ok());
        assert_eq!(check_offer(OFFER, 10, 3), Err(MediaError::SdpTooLarge(10)));
        assert!(matches!(
            check_offer("hello", 4096, 3),
            Err(MediaError::InvalidSdp(_))
        ));
        let many = format!("{OFFER}m=video 9 UDP/TLS/RTP/SAVPF 96\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n");
        assert_eq!(check_offer(&many, 4096, 3), Err(MediaError::TooManyTracks(3)));
        assert!(matches!(
            check_offer(&OFFER.replace("a=fingerprint:sha-256 AA\r\n", ""), 4096, 3),
            Err(MediaError::InvalidSdp(_))
        ));
    }

    #[test]
    fn candidates_are_checked() {
        assert!(check_candidate("candidate:1 1 udp 2122260223 127.0.0.1 40000 typ host").is_ok());
        assert!(check_candidate("").is_ok());
        assert_eq!(check_candidate("rm -rf /"), Err(MediaError::InvalidCandidate));
    }
}
