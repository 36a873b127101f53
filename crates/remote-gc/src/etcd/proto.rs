//! The etcd v3 messages the election uses, declared with prost's derive.
//!
//! Field numbers and types are those of etcd's `etcdserverpb/rpc.proto`, `mvccpb/kv.proto`
//! and `v3electionpb/v3election.proto` (stable since etcd 3.0 / 3.4). Only the fields this
//! crate reads or writes are declared: protobuf decoders skip unknown fields, and absent
//! fields take their default, so the messages stay wire-compatible with newer etcd servers.
//! Declaring them here instead of generating them from the `.proto` files is what lets the
//! crate build without `protoc` (see `docs/remote-gc.md`).

/// gRPC method paths.
pub(crate) mod path {
    pub(crate) const LEASE_GRANT: &str = "/etcdserverpb.Lease/LeaseGrant";
    pub(crate) const LEASE_REVOKE: &str = "/etcdserverpb.Lease/LeaseRevoke";
    pub(crate) const LEASE_KEEP_ALIVE: &str = "/etcdserverpb.Lease/LeaseKeepAlive";
    pub(crate) const WATCH: &str = "/etcdserverpb.Watch/Watch";
    pub(crate) const CAMPAIGN: &str = "/v3electionpb.Election/Campaign";
    pub(crate) const LEADER: &str = "/v3electionpb.Election/Leader";
    pub(crate) const RESIGN: &str = "/v3electionpb.Election/Resign";
}

/// `etcdserverpb.ResponseHeader`
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ResponseHeader {
    #[prost(int64, tag = "3")]
    pub revision: i64,
}

/// `mvccpb.KeyValue`
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct KeyValue {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(int64, tag = "2")]
    pub create_revision: i64,
    #[prost(bytes = "vec", tag = "5")]
    pub value: Vec<u8>,
    #[prost(int64, tag = "6")]
    pub lease: i64,
}

/// `mvccpb.Event`
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Event {
    /// `PUT = 0`, `DELETE = 1`.
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(message, optional, tag = "2")]
    pub kv: Option<KeyValue>,
}

/// `mvccpb.Event.EventType.DELETE`
pub(crate) const EVENT_DELETE: i32 = 1;

/// `etcdserverpb.LeaseGrantRequest`
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct LeaseGrantRequest {
    #[prost(int64, tag = "1")]
    pub ttl: i64,
    /// 0: etcd chooses the id.
    #[prost(int64, tag = "2")]
    pub id: i64,
}

/// `etcdserverpb.LeaseGrantResponse`
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct LeaseGrantResponse {
    #[prost(int64, tag = "2")]
    pub id: i64,
    #[prost(int64, tag = "3")]
    pub ttl: i64,
    #[prost(string, tag = "4")]
    pub error: String,
}

/// `etcdserverpb.LeaseRevokeRequest`
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct LeaseRevokeRequest {
    #[prost(int64, tag = "1")]
    pub id: i64,
}

/// `etcdserverpb.LeaseRevokeResponse`
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct LeaseRevokeResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
}

/// `etcdserverpb.LeaseKeepAliveRequest`
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct LeaseKeepAliveRequest {
    #[prost(int64, tag = "1")]
    pub id: i64,
}

/// `etcdserverpb.LeaseKeepAliveResponse`
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct LeaseKeepAliveResponse {
    #[prost(int64, tag = "2")]
    pub id: i64,
    /// The renewed TTL; 0 or less: the lease does not exist (expired or revoked).
    #[prost(int64, tag = "3")]
    pub ttl: i64,
}

/// `etcdserverpb.WatchRequest` with only the `create_request` member of its `request_union`
/// oneof (a oneof member is encoded exactly like an optional field with the same tag).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct WatchRequest {
    #[prost(message, optional, tag = "1")]
    pub create_request: Option<WatchCreateRequest>,
}

/// `etcdserverpb.WatchCreateRequest`
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct WatchCreateRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(int64, tag = "3")]
    pub start_revision: i64,
}

/// `etcdserverpb.WatchResponse`
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct WatchResponse {
    #[prost(bool, tag = "3")]
    pub created: bool,
    #[prost(bool, tag = "4")]
    pub canceled: bool,
    #[prost(int64, tag = "5")]
    pub compact_revision: i64,
    #[prost(string, tag = "6")]
    pub cancel_reason: String,
    #[prost(message, repeated, tag = "11")]
    pub events: Vec<Event>,
}

/// `v3electionpb.LeaderKey`
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct LeaderKey {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub key: Vec<u8>,
    #[prost(int64, tag = "3")]
    pub rev: i64,
    #[prost(int64, tag = "4")]
    pub lease: i64,
}

/// `v3electionpb.CampaignRequest`
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct CampaignRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
    #[prost(int64, tag = "2")]
    pub lease: i64,
    #[prost(bytes = "vec", tag = "3")]
    pub value: Vec<u8>,
}

/// `v3electionpb.CampaignResponse`
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct CampaignResponse {
    #[prost(message, optional, tag = "2")]
    pub leader: Option<LeaderKey>,
}

/// `v3electionpb.LeaderRequest`
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct LeaderRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
}

/// `v3electionpb.LeaderResponse`
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct LeaderResponse {
    #[prost(message, optional, tag = "2")]
    pub kv: Option<KeyValue>,
}

/// `v3electionpb.ResignRequest`
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ResignRequest {
    #[prost(message, optional, tag = "1")]
    pub leader: Option<LeaderKey>,
}

/// `v3electionpb.ResignResponse`
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ResignResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use prost::Message;

    use super::*;

    #[test]
    fn wire_bytes_match_protoc_output() {
        // Bytes as protoc-generated code encodes them (field tag, wire type, value).
        let req = CampaignRequest {
            name: b"/e".to_vec(),
            lease: 300,
            value: b"a:1".to_vec(),
        };
        assert_eq!(
            req.encode_to_vec(),
            [0x0a, 2, b'/', b'e', 0x10, 0xac, 0x02, 0x1a, 3, b'a', b':', b'1']
        );
        let watch = WatchRequest {
            create_request: Some(WatchCreateRequest {
                key: b"k".to_vec(),
                start_revision: 7,
            }),
        };
        assert_eq!(watch.encode_to_vec(), [0x0a, 5, 0x0a, 1, b'k', 0x18, 7]);
        assert_eq!(
            LeaseGrantRequest { ttl: 60, id: 0 }.encode_to_vec(),
            [0x08, 60]
        );
    }

    #[test]
    fn decodes_and_skips_unknown_fields() {
        // A LeaderResponse with a full header (cluster_id=1, revision=9) and a kv carrying
        // fields this crate does not declare (mod_revision=4, version=1).
        let bytes = [
            0x0a, 4, 0x08, 1, 0x18, 9, // header
            0x12, 15, 0x0a, 2, b'/', b'k', 0x10, 3, 0x18, 4, 0x20, 1, 0x2a, 1, b'v', 0x30,
            5, // kv
        ];
        let resp = LeaderResponse::decode(&bytes[..]).unwrap();
        let kv = resp.kv.unwrap();
        assert_eq!(
            (
                kv.key.as_slice(),
                kv.create_revision,
                kv.value.as_slice(),
                kv.lease
            ),
            (&b"/k"[..], 3, &b"v"[..], 5)
        );
    }
}
