//! Recordings of video visits: the sealed at-rest format ([`sealed`]), the timeline of a recording with its
//! secure pauses and gaps ([`timeline`]), and a visit's parts and segments presented as one file and one
//! timeline ([`assembly`]), and one participant's share of it as a file of its own ([`remux`]). Which visits are recorded, with what consent, retention and viewers
//! comes from `policy::recording`. Recording is never written anywhere in plaintext.

pub mod assembly;
pub mod cues;
pub mod depacketize;
pub mod objects;
pub mod reader;
pub mod recorder;
pub mod recovery;
pub mod remux;
pub mod retention;
pub mod sealed;
pub mod session;
pub mod timeline;
pub mod webm;
pub mod workdir;
