//! A minimal etcd v3 gRPC client: the seven calls the election makes.

use tokio::sync::mpsc;
use tonic::client::Grpc;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status, Streaming};
use tonic_prost::ProstCodec;

use super::proto::{self, path};

/// The message etcd's election service answers `Leader` with when nobody campaigns.
const NO_LEADER: &str = "election: no leader";

/// A bidirectional stream: the request sender (kept alive as long as the stream is used) and
/// the responses.
pub(crate) type BiStream<Q, R> = (mpsc::Sender<Q>, Streaming<R>);

/// A connection (lazy, reconnecting) to an etcd cluster.
#[derive(Debug, Clone)]
pub(crate) struct EtcdClient {
    channel: Channel,
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

impl EtcdClient {
    /// A client over `endpoints`; nothing is connected until the first call. Must be called
    /// inside a tokio runtime, which then drives the connection.
    pub(crate) fn connect_lazy(endpoints: &[Endpoint]) -> Self {
        let channel = match endpoints {
            [one] => one.connect_lazy(),
            many => Channel::balance_list(many.iter().cloned()),
        };
        EtcdClient { channel }
    }

    async fn ready(&self) -> Result<Grpc<Channel>, Status> {
        let mut grpc = Grpc::new(self.channel.clone());
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(format!("etcd is unreachable: {}", chain(&e))))?;
        Ok(grpc)
    }

    async fn unary<Q, R>(&self, path: &'static str, req: Q) -> Result<R, Status>
    where
        Q: prost::Message + Send + Sync + 'static,
        R: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = self.ready().await?;
        let codec = ProstCodec::<Q, R>::new();
        Ok(grpc
            .unary(Request::new(req), PathAndQuery::from_static(path), codec)
            .await?
            .into_inner())
    }

    /// Open a bidirectional stream whose first request is `first`. gRPC servers send the
    /// response headers with the first response, so the request must be queued before the
    /// call is awaited.
    async fn bidi<Q, R>(&self, path: &'static str, first: Q) -> Result<BiStream<Q, R>, Status>
    where
        Q: prost::Message + Send + Sync + 'static,
        R: prost::Message + Default + Send + Sync + 'static,
    {
        let (tx, rx) = mpsc::channel(4);
        tx.try_send(first)
            .map_err(|_| Status::internal("a fresh request channel refused its first message"))?;
        let mut grpc = self.ready().await?;
        let codec = ProstCodec::<Q, R>::new();
        let responses = grpc
            .streaming(
                Request::new(ReceiverStream::new(rx)),
                PathAndQuery::from_static(path),
                codec,
            )
            .await?;
        Ok((tx, responses.into_inner()))
    }

    /// `Lease.LeaseGrant`: a new lease of `ttl_secs`; returns its id and the TTL etcd granted.
    pub(crate) async fn lease_grant(&self, ttl_secs: i64) -> Result<(i64, i64), Status> {
        let resp: proto::LeaseGrantResponse = self
            .unary(
                path::LEASE_GRANT,
                proto::LeaseGrantRequest {
                    ttl: ttl_secs,
                    id: 0,
                },
            )
            .await?;
        if !resp.error.is_empty() {
            return Err(Status::unknown(resp.error));
        }
        if resp.ttl <= 0 {
            return Err(Status::unknown(format!(
                "etcd granted lease {:x} a TTL of {} s",
                resp.id, resp.ttl
            )));
        }
        Ok((resp.id, resp.ttl))
    }

    /// `Lease.LeaseRevoke`: end the lease now; etcd deletes the keys attached to it.
    pub(crate) async fn lease_revoke(&self, id: i64) -> Result<(), Status> {
        let _: proto::LeaseRevokeResponse = self
            .unary(path::LEASE_REVOKE, proto::LeaseRevokeRequest { id })
            .await?;
        Ok(())
    }

    /// `Lease.LeaseKeepAlive`: a stream with one keep-alive request of lease `id` queued.
    pub(crate) async fn keep_alive(
        &self,
        id: i64,
    ) -> Result<BiStream<proto::LeaseKeepAliveRequest, proto::LeaseKeepAliveResponse>, Status> {
        self.bidi(path::LEASE_KEEP_ALIVE, proto::LeaseKeepAliveRequest { id })
            .await
    }

    /// `Election.Campaign`: returns once this candidate leads the election `name`.
    pub(crate) async fn campaign(
        &self,
        name: &[u8],
        value: &[u8],
        lease: i64,
    ) -> Result<proto::LeaderKey, Status> {
        let req = proto::CampaignRequest {
            name: name.to_vec(),
            lease,
            value: value.to_vec(),
        };
        let resp: proto::CampaignResponse = self.unary(path::CAMPAIGN, req).await?;
        resp.leader
            .ok_or_else(|| Status::unknown("etcd answered a campaign without a leader key"))
    }

    /// `Election.Leader`: the leader's key and value, `None` when nobody leads.
    pub(crate) async fn leader(&self, name: &[u8]) -> Result<Option<proto::KeyValue>, Status> {
        match self
            .unary::<_, proto::LeaderResponse>(
                path::LEADER,
                proto::LeaderRequest {
                    name: name.to_vec(),
                },
            )
            .await
        {
            Ok(resp) => Ok(resp.kv),
            Err(status) if status.message().contains(NO_LEADER) => Ok(None),
            Err(status) => Err(status),
        }
    }

    /// `Election.Resign`: give up the leadership held with `leader` (deletes its key).
    pub(crate) async fn resign(&self, leader: proto::LeaderKey) -> Result<(), Status> {
        let _: proto::ResignResponse = self
            .unary(
                path::RESIGN,
                proto::ResignRequest {
                    leader: Some(leader),
                },
            )
            .await?;
        Ok(())
    }

    /// `Watch.Watch` on one key from `start_revision` (inclusive).
    pub(crate) async fn watch(
        &self,
        key: &[u8],
        start_revision: i64,
    ) -> Result<BiStream<proto::WatchRequest, proto::WatchResponse>, Status> {
        let create = proto::WatchCreateRequest {
            key: key.to_vec(),
            start_revision,
        };
        self.bidi(
            path::WATCH,
            proto::WatchRequest {
                create_request: Some(create),
            },
        )
        .await
    }
}
