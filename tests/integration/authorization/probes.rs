//! The requests of the authorization test, one per rule of the shipped policy, and the guests' and staff's
//! steps into a visit (each a rule of its own).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use super::{allowed_frame, ask};
use crate::chat::Ws;
use crate::common::client;
use crate::demo::staff_cookie;

/// One request a rule allows: its name, the rule, and the action audited when it is refused.
pub struct Probe {
    pub name: &'static str,
    pub rule: &'static str,
    pub action: &'static str,
}

pub const PROBES: &[Probe] = &[
    Probe {
        name: "staff reads own session (HTTP)",
        rule: "own-session",
        action: "session.read",
    },
    Probe {
        name: "patient tests camera and connection (socket)",
        rule: "own-media-test",
        action: "media.test",
    },
    Probe {
        name: "patient starts a chat (socket)",
        rule: "patient-start-conversation",
        action: "conversation.create",
    },
    Probe {
        name: "nurse goes ready (socket)",
        rule: "nurse-work-queue",
        action: "queue.work",
    },
    Probe {
        name: "patient writes in own chat (socket)",
        rule: "patient-own-conversation",
        action: "conversation.write",
    },
    Probe {
        name: "nurse writes in assigned chat (socket)",
        rule: "nurse-assigned-conversation",
        action: "conversation.write",
    },
    Probe {
        name: "nurse previews the chat offered to her (socket)",
        rule: "nurse-offered-preview",
        action: "conversation.preview",
    },
    Probe {
        name: "nurse wraps up the chat she ended (socket)",
        rule: "nurse-wrap-up",
        action: "conversation.wrap_up",
    },
    Probe {
        name: "nurse elevates assigned chat (socket)",
        rule: "nurse-elevate-assigned",
        action: "visit.create",
    },
    Probe {
        name: "patient answers the camera prompt (socket)",
        rule: "patient-own-visit",
        action: "visit.answer",
    },
    Probe {
        name: "patient invites a guest (socket)",
        rule: "patient-invite-guest",
        action: "visit.invite",
    },
    Probe {
        name: "nurse lets a guest in (socket)",
        rule: "nurse-admit-guest",
        action: "visit.admit",
    },
    Probe {
        name: "guest answers the recording question (socket)",
        rule: "guest-admitted-visit",
        action: "visit.answer",
    },
    Probe {
        name: "nurse lists interpreters and physicians (socket)",
        rule: "nurse-consult-staff",
        action: "visit.consult",
    },
    Probe {
        name: "interpreter accepts the nurse's request (socket)",
        rule: "staff-answer-consult",
        action: "visit.consult_answer",
    },
    Probe {
        name: "interpreter answers the recording question (socket)",
        rule: "staff-consulting-visit",
        action: "visit.answer",
    },
    Probe {
        name: "nurse pauses recording (HTTP)",
        rule: "nurse-assigned-visit",
        action: "visit.recording_state.set",
    },
    Probe {
        name: "EMR pauses recording (HTTP)",
        rule: "emr-pause-others",
        action: "visit.recording_state.set",
    },
    Probe {
        name: "supervisor reads queue statistics (HTTP)",
        rule: "supervisor-queue-stats",
        action: "queue.stats.read",
    },
    Probe {
        name: "compliance lists recordings (HTTP)",
        rule: "compliance-recordings",
        action: "recording.list",
    },
    Probe {
        name: "compliance reads the audit log (HTTP)",
        rule: "compliance-audit",
        action: "audit.read",
    },
    Probe {
        name: "helpdesk reads system status (HTTP)",
        rule: "operators-system-status",
        action: "system.status.read",
    },
    Probe {
        name: "supervisor declares a break-glass emergency (HTTP)",
        rule: "break-glass-request",
        action: "break_glass.request",
    },
    Probe {
        name: "supervisor reads a live chat (HTTP)",
        rule: "supervisor-read-live-chat",
        action: "conversation.read",
    },
    Probe {
        name: "supervisor reads an ended chat under break-glass (socket)",
        rule: "break-glass",
        action: "conversation.read",
    },
];

/// The patient invites a guest, the guest arrives in the lobby, the nurse lets them in, and the guest answers the
/// recording question: each step a rule of its own allows.
pub async fn guest_probes(
    url: &str,
    visit: &str,
    patient: &mut Ws,
    nurse: &mut Ws,
    out: &mut BTreeMap<&'static str, Option<bool>>,
) {
    let invite = json!({"v": 1, "type": "guest_invite", "visit_id": visit});
    let link = ask(patient, invite, "guest_link").await;
    let invited = allowed_frame(&link, "guest_link");
    out.insert("patient invites a guest (socket)", Some(invited));
    if !invited {
        return;
    }
    let token = link["link"].as_str().unwrap().rsplit('#').next().unwrap();
    let arrive = client()
        .post(format!("{url}/api/v1/guest-sessions"))
        .header("origin", url);
    let body = json!({"token": token, "name": "Probe Guest"});
    let arrived: Value = arrive.json(&body).send().await.unwrap().json().await.unwrap();
    let guest_id = arrived["guest_id"].as_str().expect("a guest session").to_string();
    let mut guest = Ws::patient(url, arrived["session_token"].as_str().unwrap()).await;
    guest.expect("guest_lobby").await;
    let in_state = |v: &Value, state: &str| v["type"] == "video_party" && v["guests"][0]["state"] == state;
    nurse
        .wait("the guest in the lobby", |v| in_state(v, "lobby"))
        .await;
    let admit =
        json!({"v": 1, "type": "guest_admit", "visit_id": visit, "guest_id": guest_id, "admit": true});
    nurse.send(admit).await;
    let admitted = nurse
        .wait("the guest admitted", |v| {
            v["type"] == "error" || in_state(v, "admitted")
        })
        .await;
    let admitted = allowed_frame(&admitted, "video_party");
    out.insert("nurse lets a guest in (socket)", Some(admitted));
    if !admitted {
        return;
    }
    guest.expect("video_proposed").await;
    let answer = json!({"v": 1, "type": "video_answer", "visit_id": visit, "accept": true, "recording_consent": false});
    let a = ask(&mut guest, answer, "video_started").await;
    out.insert(
        "guest answers the recording question (socket)",
        Some(allowed_frame(&a, "video_started")),
    );
}

/// The nurse lists the interpreters and physicians signed in and asks the interpreter in, who accepts and
/// answers the recording question: each step a rule of its own allows.
pub async fn consult_probes(
    (url, data): (&str, &Path),
    visit: &str,
    nurse: &mut Ws,
    out: &mut BTreeMap<&'static str, Option<bool>>,
) {
    let mut ines = Ws::staff(url, &staff_cookie(url, data, "interpreter").await).await;
    let list = json!({"v": 1, "type": "consult_staff", "visit_id": visit});
    let listed = ask(nurse, list, "consult_staff").await;
    let allowed = allowed_frame(&listed, "consult_staff");
    out.insert("nurse lists interpreters and physicians (socket)", Some(allowed));
    if !allowed {
        return;
    }
    let staff_id = listed["staff"][0]["staff_id"]
        .as_str()
        .expect("the interpreter")
        .to_string();
    let invite = json!({"v": 1, "type": "consult_invite", "visit_id": visit, "staff_id": staff_id});
    nurse.send(invite).await;
    ines.expect("consult_asked").await;
    let accept = json!({"v": 1, "type": "consult_answer", "visit_id": visit, "accept": true});
    let proposed = ask(&mut ines, accept, "video_proposed").await;
    let accepted = allowed_frame(&proposed, "video_proposed");
    out.insert("interpreter accepts the nurse's request (socket)", Some(accepted));
    if !accepted {
        return;
    }
    let answer = json!({"v": 1, "type": "video_answer", "visit_id": visit, "accept": true, "recording_consent": false});
    let a = ask(&mut ines, answer, "video_started").await;
    out.insert(
        "interpreter answers the recording question (socket)",
        Some(allowed_frame(&a, "video_started")),
    );
}
