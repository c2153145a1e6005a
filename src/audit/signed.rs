//! The signed, self-describing file of a scheduled report: `{"signed": {...}, "signature": {...}}`, where the
//! signature (Ed25519, the audit-signing key) covers the exact bytes of `signed` as they stand in the file.
//! `signed` holds the report (its parameters and the chain head it read), the schedule, the period and when it
//! was executed. Anyone with the public key can check a copy offline (`examroom report verify FILE`): any
//! change to the signed part, however small, is refused. Pure: bytes in, bytes out.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::checkpoint::{Signer, verify_document};
use super::reports::{ChainHead, Report};
use super::schedule::Period;

/// What the signature's message starts with (a report signature never verifies as a checkpoint).
const DOMAIN: &str = "examroom-scheduled-report-v1";

/// Why a file is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("not a signed examroom report: {0}")]
    NotASignedReport(String),
    #[error("signed by key {0}, which this deployment does not trust")]
    UnknownKey(String),
    #[error("the signature does not match the contents: the report was changed after it was signed")]
    Tampered,
}

/// A report whose signature checked out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verified {
    pub key_id: String,
    pub schedule: String,
    pub report: String,
    pub from: String,
    pub to: String,
    pub executed_at: String,
    pub chain_head: ChainHead,
}

#[derive(Serialize, Deserialize)]
struct Signature {
    alg: String,
    key_id: String,
    value: String,
}

/// Nothing beside the signed part and its signature: an unsigned field a reader might take for the report is
/// refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow)]
    signed: &'a RawValue,
    signature: Signature,
}

/// The file for `report`, produced by schedule `schedule` for `period` at `executed_ms`.
pub fn seal(report: &Report, schedule: &str, period: Period, executed_ms: i64, signer: &Signer) -> Vec<u8> {
    let signed = json!({
        "format": DOMAIN,
        "schedule": schedule,
        "period": {"from": crate::clock::timestamp(period.from_ms), "to": crate::clock::timestamp(period.to_ms)},
        "executed_at": crate::clock::timestamp(executed_ms),
        "report": report,
    });
    let body = serde_json::to_string_pretty(&signed).expect("JSON values serialise");
    let signature = Signature {
        alg: "Ed25519".into(),
        key_id: signer.key_id().to_string(),
        value: signer.sign_document(DOMAIN, body.as_bytes()),
    };
    let signature = serde_json::to_string(&signature).expect("serialises");
    format!("{{\n\"signed\": {body},\n\"signature\": {signature}\n}}\n").into_bytes()
}

/// Checks a file against the public keys this deployment trusts.
pub fn verify(file: &[u8], public_keys: &[Vec<u8>]) -> Result<Verified, Refused> {
    let envelope: Envelope =
        serde_json::from_slice(file).map_err(|e| Refused::NotASignedReport(e.to_string()))?;
    let sig = &envelope.signature;
    let body = envelope.signed.get().as_bytes();
    let trusted = public_keys
        .iter()
        .any(|k| super::checkpoint::key_id(k) == sig.key_id);
    if !trusted {
        return Err(Refused::UnknownKey(sig.key_id.clone()));
    }
    if sig.alg != "Ed25519" || !verify_document(DOMAIN, &sig.key_id, body, &sig.value, public_keys) {
        return Err(Refused::Tampered);
    }
    let signed: Value = serde_json::from_slice(body).map_err(|e| Refused::NotASignedReport(e.to_string()))?;
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    if signed["format"] != DOMAIN {
        return Err(Refused::NotASignedReport(format!("format {}", signed["format"])));
    }
    let head = &signed["report"]["chain_head"];
    Ok(Verified {
        key_id: sig.key_id.clone(),
        schedule: text(&signed["schedule"]),
        report: text(&signed["report"]["report"]),
        from: text(&signed["period"]["from"]),
        to: text(&signed["period"]["to"]),
        executed_at: text(&signed["executed_at"]),
        chain_head: ChainHead {
            seq: head["seq"].as_i64().unwrap_or(-1),
            hash: text(&head["hash"]),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::reports::{ReportQuery, compute};

    fn file(signer: &Signer) -> Vec<u8> {
        let q = ReportQuery::new("access", "2026-12-02", "2026-12-03", None, 20).unwrap();
        let head = ChainHead {
            seq: 0,
            hash: crate::audit::GENESIS_HASH.into(),
        };
        let period = Period {
            from_ms: q.from_ms,
            to_ms: q.to_ms,
        };
        seal(
            &compute(&q, head, &[]),
            "daily-access",
            period,
            q.to_ms + 60_000,
            signer,
        )
    }

    #[test]
    fn a_sealed_report_verifies_and_any_change_is_refused() {
        let signer = Signer::from_pkcs8(&Signer::generate_pkcs8()).unwrap();
        let keys = vec![signer.public_key()];
        let f = file(&signer);
        let v = verify(&f, &keys).unwrap();
        assert_eq!(
            (v.schedule.as_str(), v.report.as_str()),
            ("daily-access", "access")
        );
        assert_eq!(v.from, "2026-12-02T00:00:00.000Z");
        assert_eq!(v.executed_at, "2026-12-03T00:01:00.000Z");
        assert_eq!(v.chain_head.seq, 0);

        let text = String::from_utf8(f.clone()).unwrap();
        let changed = text.replacen("\"rows\": []", "\"rows\": [{}]", 1);
        assert_ne!(changed, text);
        assert_eq!(verify(changed.as_bytes(), &keys), Err(Refused::Tampered));
        let spaced = text.replacen("\"schedule\": ", "\"schedule\":  ", 1);
        assert_eq!(
            verify(spaced.as_bytes(), &keys),
            Err(Refused::Tampered),
            "even a space"
        );

        let other = Signer::from_pkcs8(&Signer::generate_pkcs8()).unwrap();
        assert!(matches!(
            verify(&f, &[other.public_key()]),
            Err(Refused::UnknownKey(_))
        ));
        assert!(matches!(verify(b"{}", &keys), Err(Refused::NotASignedReport(_))));
        let extra = text.replacen("{\n\"signed\"", "{\n\"report\": {},\n\"signed\"", 1);
        assert_ne!(extra, text);
        assert!(
            matches!(verify(extra.as_bytes(), &keys), Err(Refused::NotASignedReport(_))),
            "an unsigned field beside the signed part"
        );
    }
}
