//! Reply bodies and their exact wire form.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use serde::{Serialize, Serializer};

/// The media type of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContentType {
    /// `text/plain; charset=utf-8`
    Text,
    /// `application/json`
    Json,
    /// `application/octet-stream` (profiles, dumps)
    OctetStream,
    /// `image/svg+xml` (flame graphs)
    Svg,
}

impl ContentType {
    /// The `Content-Type` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::Text => "text/plain; charset=utf-8",
            ContentType::Json => "application/json",
            ContentType::OctetStream => "application/octet-stream",
            ContentType::Svg => "image/svg+xml",
        }
    }
}

/// A complete reply: status code, media type and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// Media type of `body`.
    pub content_type: ContentType,
    /// The body.
    pub body: Bytes,
    /// The `Allow` header, set on 405 replies.
    pub allow: Option<&'static str>,
}

impl Reply {
    /// A reply with the given status, media type and body.
    pub fn new(status: u16, content_type: ContentType, body: impl Into<Bytes>) -> Self {
        Reply {
            status,
            content_type,
            body: body.into(),
            allow: None,
        }
    }

    /// A 200 `text/plain` reply.
    pub fn text(body: impl Into<Bytes>) -> Self {
        Reply::new(200, ContentType::Text, body)
    }

    /// A 200 `application/json` reply with `value` serialized.
    pub fn json<T: Serialize>(value: &T) -> Self {
        // Serializing these plain structs cannot fail: they hold only strings and enums.
        let body = serde_json::to_vec(value)
            .unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()).into_bytes());
        Reply::new(200, ContentType::Json, body)
    }

    /// A 200 `application/octet-stream` reply.
    pub fn binary(body: impl Into<Bytes>) -> Self {
        Reply::new(200, ContentType::OctetStream, body)
    }
}

/// The life cycle of the store, as `GET /tiflash/store-status` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum StoreStatus {
    /// Starting up, not initialised yet.
    Idle = 0,
    /// Initialised, not serving yet.
    Ready = 1,
    /// Serving.
    Running = 2,
    /// A shutdown was requested; in-flight work finishes.
    Stopping = 3,
    /// Shut down; the process is exiting.
    Terminated = 4,
}

impl StoreStatus {
    /// All states, in life-cycle order.
    pub const ALL: [StoreStatus; 5] = [
        StoreStatus::Idle,
        StoreStatus::Ready,
        StoreStatus::Running,
        StoreStatus::Stopping,
        StoreStatus::Terminated,
    ];

    /// The wire name (`Idle`, `Ready`, `Running`, `Stopping`, `Terminated`).
    pub fn as_str(self) -> &'static str {
        match self {
            StoreStatus::Idle => "Idle",
            StoreStatus::Ready => "Ready",
            StoreStatus::Running => "Running",
            StoreStatus::Stopping => "Stopping",
            StoreStatus::Terminated => "Terminated",
        }
    }

    /// The state for a `repr(u8)` value, for lock-free storage in an atomic.
    pub fn from_u8(v: u8) -> Option<StoreStatus> {
        StoreStatus::ALL.get(usize::from(v)).copied()
    }

    /// The store-status reply: the name, no trailing newline.
    pub fn to_reply(self) -> Reply {
        Reply::text(self.as_str())
    }
}

impl fmt::Display for StoreStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StoreStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StoreStatus::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown store status '{s}': expected Idle, Ready, Running, Stopping or Terminated"))
    }
}

/// The regions of one table replicated on this node, as `sync-status` reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStatus {
    /// Region ids, ascending.
    pub region_ids: Vec<u64>,
}

impl SyncStatus {
    /// `<count>\n<id> <id> …\n`; `0\n\n` when there are none.
    pub fn to_body(&self) -> String {
        let mut out = format!("{}\n", self.region_ids.len());
        for (i, id) in self.region_ids.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(&id.to_string());
        }
        out.push('\n');
        out
    }

    /// The 200 `text/plain` reply.
    pub fn to_reply(&self) -> Reply {
        Reply::text(self.to_body())
    }
}

/// Who owns the remote GC, as seen by this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OwnerStatus {
    /// This node is the owner.
    IsOwner,
    /// Another node is the owner.
    NotOwner,
    /// No node is the owner right now.
    NoLeader,
    /// The election backend could not be asked; `owner_id` carries the error.
    GrpcError,
}

/// The body of `/tiflash/remote/owner/info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnerInfo {
    /// The ownership state.
    pub status: OwnerStatus,
    /// The owner's engine address, or the error text for `GrpcError`.
    pub owner_id: String,
}

/// The body of `/tiflash/remote/gc`: the owner info plus whether GC was triggered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GcReply {
    /// The ownership state.
    pub status: OwnerStatus,
    /// The owner's engine address, or the error text.
    pub owner_id: String,
    /// Whether the GC task was woken; sent as the string `"true"`/`"false"`, as TiFlash does.
    #[serde(serialize_with = "bool_as_string")]
    pub execute: bool,
}

fn bool_as_string<S: Serializer>(v: &bool, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(if *v { "true" } else { "false" })
}

/// A `{"message": …}` body (`owner/resign`, `upload`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageReply {
    /// The message.
    pub message: String,
}

impl MessageReply {
    /// `{"message":"Done"}`: the owner resigned.
    pub fn resigned() -> Self {
        MessageReply {
            message: "Done".into(),
        }
    }

    /// The resign answer of a node that is not the owner.
    pub fn not_owner() -> Self {
        MessageReply {
            message: "This node is not the remote gc owner, can't be resigned.".into(),
        }
    }

    /// `{"message":"flag_set=true"}`: the upload flag was set.
    pub fn upload_flag_set() -> Self {
        MessageReply {
            message: "flag_set=true".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_status_wire_form() {
        assert_eq!(SyncStatus::default().to_body(), "0\n\n");
        assert_eq!(
            SyncStatus {
                region_ids: vec![1, 5, 9]
            }
            .to_body(),
            "3\n1 5 9\n"
        );
    }

    #[test]
    fn json_wire_forms() {
        let gc = GcReply {
            status: OwnerStatus::IsOwner,
            owner_id: "a\"b".into(),
            execute: true,
        };
        assert_eq!(
            String::from_utf8(Reply::json(&gc).body.to_vec()).unwrap(),
            r#"{"status":"IsOwner","owner_id":"a\"b","execute":"true"}"#
        );
        let info = OwnerInfo {
            status: OwnerStatus::NoLeader,
            owner_id: String::new(),
        };
        assert_eq!(
            Reply::json(&info).body.as_ref(),
            br#"{"status":"NoLeader","owner_id":""}"#
        );
        assert_eq!(
            Reply::json(&MessageReply::not_owner()).body.as_ref(),
            br#"{"message":"This node is not the remote gc owner, can't be resigned."}"#
        );
    }

    #[test]
    fn store_status_round_trips() {
        for st in StoreStatus::ALL {
            assert_eq!(StoreStatus::from_u8(st as u8), Some(st));
            assert_eq!(st.as_str().parse::<StoreStatus>(), Ok(st));
        }
        assert_eq!(StoreStatus::from_u8(5), None);
        assert_eq!(StoreStatus::Running.to_reply().body.as_ref(), b"Running");
    }
}
