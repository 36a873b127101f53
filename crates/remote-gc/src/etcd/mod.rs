//! The etcd backend: lease, campaign, confirmation, watch, keep-alive deadline.
//!
//! One thread (`remote-gc-etcd`) runs a current-thread tokio runtime with the election loop:
//!
//! ```text
//! loop (until stopped):                       reconnect, backoff while etcd is away
//!   session: LeaseGrant(ttl) → keep-alive task (every ttl/3; owner deadline = sent + ttl - margin)
//!     loop: Campaign(key, engine addr, lease)  blocks until this node leads
//!           Watch(our key) + Leader(key) == our key  → owner
//!           until: lease lost / deadline passed | our key deleted | resign | stop
//!   LeaseRevoke (best effort), so that the next node need not wait for the TTL
//! ```
//!
//! [`EtcdElection::is_owner`](crate::OwnerElection::is_owner) reads only local state and the
//! clock, so it turns `false` at the deadline even if the loop is blocked on a dead etcd.

mod client;
mod proto;

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::timeout;
use tonic::transport::Endpoint;
use tonic::Status;

use self::client::{BiStream, EtcdClient};
use self::proto::{
    LeaderKey, LeaseKeepAliveRequest, LeaseKeepAliveResponse, WatchRequest, WatchResponse,
    EVENT_DELETE,
};
use crate::{BoxFuture, Error, OwnerElection, Ownership, DEFAULT_ELECTION_KEY};

/// The longest lease TTL accepted (one day).
const MAX_TTL: Duration = Duration::from_secs(86_400);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain state, still consistent after a panic elsewhere.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How to reach etcd and how to campaign.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    endpoints: Vec<String>,
    id: String,
    ttl: Duration,
    election_key: String,
}

impl EtcdConfig {
    /// The default lease TTL (60 s).
    pub const DEFAULT_TTL: Duration = Duration::from_secs(60);

    /// Campaign through the etcd `endpoints` (`host:port` or `http://host:port`) with `id`
    /// (this node's engine address) as the value, TTL 60 s, on [`DEFAULT_ELECTION_KEY`].
    pub fn new<I, S>(endpoints: I, id: impl Into<String>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        EtcdConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            id: id.into(),
            ttl: Self::DEFAULT_TTL,
            election_key: DEFAULT_ELECTION_KEY.to_owned(),
        }
    }

    /// The lease TTL, whole seconds from 1 s to one day (etcd may grant more than asked:
    /// its minimum is about 1.5 election timeouts; the granted TTL is the one used).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The election key (the prefix under which the candidates' keys live).
    pub fn with_election_key(mut self, key: impl Into<String>) -> Self {
        self.election_key = key.into();
        self
    }

    fn endpoints(&self, connect_timeout: Duration) -> Result<Vec<Endpoint>, Error> {
        if self.endpoints.is_empty() {
            return Err(Error::Config("no etcd endpoint given".into()));
        }
        self.endpoints
            .iter()
            .map(|raw| {
                let ep = raw.trim();
                let url = if ep.starts_with("http://") {
                    ep.to_owned()
                } else if ep.contains("://") {
                    return Err(Error::Config(format!("etcd endpoint '{raw}': only plain http:// endpoints are supported (no TLS to etcd yet)")));
                } else {
                    format!("http://{ep}")
                };
                let endpoint = Endpoint::from_shared(url)
                    .map_err(|e| Error::Config(format!("etcd endpoint '{raw}' is not HOST:PORT or http://HOST:PORT: {e}")))?;
                if endpoint.uri().host().is_none_or(str::is_empty) {
                    return Err(Error::Config(format!("etcd endpoint '{raw}' names no host")));
                }
                Ok(endpoint.connect_timeout(connect_timeout).tcp_nodelay(true))
            })
            .collect()
    }

    /// Check the configuration without starting anything: what [`EtcdElection::start`]
    /// would refuse.
    pub fn validate(&self) -> Result<(), Error> {
        self.check()?;
        self.endpoints(Duration::from_secs(1)).map(drop)
    }

    fn check(&self) -> Result<(), Error> {
        if self.ttl < Duration::from_secs(1) || self.ttl > MAX_TTL || self.ttl.subsec_nanos() != 0 {
            return Err(Error::Config(format!(
                "the owner lease TTL must be whole seconds from 1 to {}, got {:?}",
                MAX_TTL.as_secs(),
                self.ttl
            )));
        }
        if self.id.trim().is_empty() {
            return Err(Error::Config(
                "the engine address (this node's id in the election) is empty".into(),
            ));
        }
        if self.election_key.is_empty() {
            return Err(Error::Config("the election key is empty".into()));
        }
        Ok(())
    }
}

/// The safety margin: how long before etcd could expire the lease this node stops calling
/// itself the owner. Covers clock-rate drift and the time a GC step takes after its
/// ownership check.
fn margin_for(ttl: Duration) -> Duration {
    (ttl / 10).clamp(Duration::from_millis(500), Duration::from_secs(10))
}

/// The owner deadline after a renewal sent at `sent` that etcd answered with `ttl`.
fn deadline_after(sent: Instant, ttl: Duration) -> Instant {
    let until = sent.checked_add(ttl).unwrap_or(sent);
    until.checked_sub(margin_for(ttl)).unwrap_or(sent)
}

/// Timings derived from the configured TTL.
#[derive(Debug, Clone, Copy)]
struct Timings {
    ttl: Duration,
    /// Unary requests (grant, leader, resign, revoke) and watch creation.
    request: Duration,
    /// `Leader` asked for a status route: short, the route must answer promptly.
    query: Duration,
    /// The longest pause between attempts while etcd is away.
    backoff_max: Duration,
}

impl Timings {
    fn new(ttl: Duration) -> Self {
        let request = (ttl / 3).clamp(Duration::from_millis(500), Duration::from_secs(5));
        Timings {
            ttl,
            request,
            query: request.min(Duration::from_secs(2)),
            backoff_max: request,
        }
    }
}

#[derive(Debug)]
enum Command {
    Resign(oneshot::Sender<bool>),
}

#[derive(Debug, Default)]
struct State {
    /// The current lease and the instant until which this node may rely on it.
    lease: Option<(i64, Instant)>,
    /// The leader key won with the current lease, while this node acts as the owner.
    leader: Option<LeaderKey>,
}

impl State {
    fn owns(&self, now: Instant) -> bool {
        match (&self.lease, &self.leader) {
            (Some((id, until)), Some(leader)) => leader.lease == *id && now < *until,
            _ => false,
        }
    }
}

#[derive(Debug)]
struct Shared {
    id: String,
    name: Vec<u8>,
    timings: Timings,
    state: Mutex<State>,
    owner_tx: watch::Sender<bool>,
    client: Mutex<Option<EtcdClient>>,
}

impl Shared {
    fn is_owner(&self) -> bool {
        lock(&self.state).owns(Instant::now())
    }

    fn publish(&self, owner: bool) {
        self.owner_tx
            .send_if_modified(|v| std::mem::replace(v, owner) != owner);
    }

    /// Stop acting as the owner (if it did).
    fn step_down(&self, why: &str) {
        let was = {
            let mut st = lock(&self.state);
            let was = st.owns(Instant::now());
            st.leader = None;
            was
        };
        self.publish(false);
        if was {
            tracing::warn!(id = %self.id, "stepped down as the remote GC owner: {why}");
        }
    }

    /// Act as the owner with `leader`, if its lease is still the current one and in time.
    fn become_owner(&self, leader: LeaderKey) -> bool {
        let key = String::from_utf8_lossy(&leader.key).into_owned();
        let owns = {
            let mut st = lock(&self.state);
            st.leader = Some(leader);
            st.owns(Instant::now())
        };
        self.publish(owns);
        if owns {
            tracing::info!(id = %self.id, %key, "became the remote GC owner");
        }
        owns
    }

    fn set_lease(&self, lease: Option<(i64, Instant)>) {
        {
            let mut st = lock(&self.state);
            st.lease = lease;
            st.leader = None;
        }
        self.publish(false);
    }

    fn lease_deadline(&self, lease: i64) -> Option<Instant> {
        match lock(&self.state).lease {
            Some((id, until)) if id == lease => Some(until),
            _ => None,
        }
    }

    fn renewed(&self, lease: i64, until: Instant) {
        if let Some((id, old)) = &mut lock(&self.state).lease {
            if *id == lease && until > *old {
                *old = until;
            }
        }
    }

    async fn query_owner(&self) -> Ownership {
        let client = lock(&self.client).clone();
        let Some(client) = client else {
            return Ownership::Error("not connected to etcd yet".into());
        };
        match call("Leader", self.timings.query, client.leader(&self.name)).await {
            Err(e) => Ownership::Error(e.chain()),
            Ok(None) => Ownership::NoLeader,
            Ok(Some(_)) if self.is_owner() => Ownership::IsOwner(self.id.clone()),
            Ok(Some(kv)) => Ownership::NotOwner(String::from_utf8_lossy(&kv.value).into_owned()),
        }
    }
}

fn etcd_error(op: &'static str, status: &Status) -> Error {
    Error::Etcd {
        op,
        message: format!("{:?}: {}", status.code(), status.message()),
    }
}

/// One request with a time limit.
async fn call<T>(
    op: &'static str,
    limit: Duration,
    fut: impl Future<Output = Result<T, Status>>,
) -> Result<T, Error> {
    match timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(status)) => Err(etcd_error(op, &status)),
        Err(_) => Err(Error::Timeout { op, timeout: limit }),
    }
}

/// Owner election on etcd v3 (3.4 and later): a lease kept alive every TTL/3, a campaign on
/// the election key with this node's id as value, a watch on the won key, and the safety rule
/// of the [crate docs](crate): this node stops calling itself the owner before etcd can
/// expire its lease. The loop runs on a thread named `remote-gc-etcd` and reconnects with a
/// backoff while etcd is away. Design and guarantees: `docs/remote-gc.md`.
///
/// Dropping it (or [`OwnerElection::close`]) resigns and revokes the lease, so that another
/// node takes over at once instead of after the TTL.
#[derive(Debug)]
pub struct EtcdElection {
    shared: Arc<Shared>,
    handle: tokio::runtime::Handle,
    commands: mpsc::UnboundedSender<Command>,
    stop: watch::Sender<bool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl EtcdElection {
    /// Validate `config` and start campaigning on a thread named `remote-gc-etcd`. Returns at
    /// once: the node becomes the owner when it wins (watch [`subscribe`](OwnerElection::subscribe)).
    pub fn start(config: EtcdConfig) -> Result<Self, Error> {
        config.check()?;
        let timings = Timings::new(config.ttl);
        let endpoints = config.endpoints(timings.request)?;
        let shared = Arc::new(Shared {
            id: config.id.clone(),
            name: config.election_key.clone().into_bytes(),
            timings,
            state: Mutex::new(State::default()),
            owner_tx: watch::Sender::new(false),
            client: Mutex::new(None),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| Error::Spawn {
                name: "remote-gc-etcd",
                source,
            })?;
        let handle = runtime.handle().clone();
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (stop, stop_rx) = watch::channel(false);
        let runner = Runner {
            shared: Arc::clone(&shared),
            endpoints,
            commands: commands_rx,
            stop: stop_rx,
            backoff: Backoff::new(timings.backoff_max),
            stale: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name("remote-gc-etcd".into())
            .spawn(move || runtime.block_on(runner.run()))
            .map_err(|source| Error::Spawn {
                name: "remote-gc-etcd",
                source,
            })?;
        tracing::info!(
            endpoints = ?config.endpoints, id = %config.id, ttl = ?config.ttl, key = %config.election_key,
            "remote GC owner election on etcd started"
        );
        Ok(EtcdElection {
            shared,
            handle,
            commands,
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }
}

impl OwnerElection for EtcdElection {
    fn id(&self) -> &str {
        &self.shared.id
    }

    fn is_owner(&self) -> bool {
        self.shared.is_owner()
    }

    fn owner(&self) -> BoxFuture<'_, Ownership> {
        if self.shared.is_owner() {
            return Box::pin(std::future::ready(Ownership::IsOwner(
                self.shared.id.clone(),
            )));
        }
        let shared = Arc::clone(&self.shared);
        // On the election's own runtime: the caller may run any executor, or none with timers.
        let task = self.handle.spawn(async move { shared.query_owner().await });
        Box::pin(async move {
            task.await
                .unwrap_or_else(|_| Ownership::Error(Error::Stopped.to_string()))
        })
    }

    fn resign(&self) -> BoxFuture<'_, Result<bool, Error>> {
        if !self.shared.is_owner() {
            return Box::pin(std::future::ready(Ok(false)));
        }
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Resign(tx)).is_err() {
            return Box::pin(std::future::ready(Err(Error::Stopped)));
        }
        let limit = self.shared.timings.request + Duration::from_secs(1);
        let task = self.handle.spawn(async move { timeout(limit, rx).await });
        Box::pin(async move {
            match task.await {
                Ok(Ok(Ok(was_owner))) => Ok(was_owner),
                Ok(Err(_)) => Err(Error::Timeout {
                    op: "Resign",
                    timeout: limit,
                }),
                Ok(Ok(Err(_))) | Err(_) => Err(Error::Stopped),
            }
        })
    }

    fn subscribe(&self) -> watch::Receiver<bool> {
        self.shared.owner_tx.subscribe()
    }

    fn close(&self) {
        self.stop.send_replace(true);
        let thread = lock(&self.thread).take();
        if let Some(t) = thread {
            if t.join().is_err() {
                tracing::error!("the remote-gc-etcd thread panicked");
            }
        }
    }
}

impl Drop for EtcdElection {
    fn drop(&mut self) {
        self.close();
    }
}

/// Exponential pause between failed attempts: 100 ms doubling up to `max`.
#[derive(Debug)]
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);

    fn new(max: Duration) -> Self {
        Backoff {
            next: Self::FIRST.min(max),
            max,
        }
    }

    fn reset(&mut self) {
        self.next = Self::FIRST.min(self.max);
    }

    fn next(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(self.max);
        d
    }
}

/// Why a session (one lease) ended.
#[derive(Debug)]
enum End {
    Stop,
    LeaseLost(String),
    Failed(String),
}

/// How a term as the owner ended, when the session goes on.
#[derive(Debug)]
enum Term {
    /// Campaign again with the same lease.
    Again,
    /// The session is over.
    End(End),
}

/// Resolves when the keep-alive task reports the lease lost; never when there is no lease.
async fn lease_lost(lost: Option<&mut oneshot::Receiver<String>>) -> String {
    match lost {
        Some(rx) => rx
            .await
            .unwrap_or_else(|_| "the keep-alive task ended".to_owned()),
        None => std::future::pending().await,
    }
}

struct Runner {
    shared: Arc<Shared>,
    endpoints: Vec<Endpoint>,
    commands: mpsc::UnboundedReceiver<Command>,
    stop: watch::Receiver<bool>,
    backoff: Backoff,
    /// Leases of ended sessions that could not be revoked (etcd was away). Revoked as soon as
    /// etcd answers again: until then their keys, ours, would make the next campaign wait for
    /// them to expire (a whole TTL after a short etcd outage).
    stale: Vec<i64>,
}

impl Runner {
    async fn run(mut self) {
        while !*self.stop.borrow() {
            // A fresh channel per session: a connection that went silent is not reused.
            let client = EtcdClient::connect_lazy(&self.endpoints);
            *lock(&self.shared.client) = Some(client.clone());
            match self.session(&client).await {
                End::Stop => break,
                End::LeaseLost(why) => {
                    tracing::warn!(id = %self.shared.id, "etcd lease lost: {why}; campaigning again with a new lease")
                }
                End::Failed(why) => {
                    tracing::warn!(id = %self.shared.id, "remote GC owner election: {why}; retrying")
                }
            }
            if self.pause(None).await.is_some() {
                break;
            }
        }
        self.shared.set_lease(None);
        tracing::info!(id = %self.shared.id, "remote GC owner election stopped");
    }

    /// Wait one backoff step, answering resign requests (not the owner). `Some` if the wait
    /// was cut short by a stop or a lost lease.
    async fn pause(&mut self, mut lost: Option<&mut oneshot::Receiver<String>>) -> Option<End> {
        let sleep = tokio::time::sleep(self.backoff.next());
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return None,
                _ = self.stop.changed() => return Some(End::Stop),
                why = lease_lost(lost.as_deref_mut()) => return Some(End::LeaseLost(why)),
                Some(Command::Resign(reply)) = self.commands.recv() => { let _ = reply.send(false); }
            }
        }
    }

    /// Revoke the leases of earlier sessions that etcd did not get to revoke.
    async fn revoke_stale(&mut self, client: &EtcdClient) {
        let limit = self.shared.timings.request.min(Duration::from_secs(1));
        let mut keep = Vec::new();
        for lease in std::mem::take(&mut self.stale) {
            match timeout(limit, client.lease_revoke(lease)).await {
                Ok(Ok(())) => {
                    tracing::debug!(lease = %format!("{lease:x}"), "revoked the lease of an earlier session")
                }
                // Expired meanwhile: nothing left to do.
                Ok(Err(status)) if status.code() == tonic::Code::NotFound => {}
                _ => keep.push(lease),
            }
        }
        self.stale = keep;
    }

    async fn session(&mut self, client: &EtcdClient) -> End {
        let t = self.shared.timings;
        let sent = Instant::now();
        let (lease, granted) = match call(
            "LeaseGrant",
            t.request,
            client.lease_grant(t.ttl.as_secs().try_into().unwrap_or(i64::MAX)),
        )
        .await
        {
            Ok(v) => v,
            Err(e) => return End::Failed(e.chain()),
        };
        self.backoff.reset();
        let granted = Duration::from_secs(u64::try_from(granted).unwrap_or(1));
        self.shared
            .set_lease(Some((lease, deadline_after(sent, granted))));
        tracing::debug!(lease = %format!("{lease:x}"), ?granted, "etcd lease granted");

        let (lost_tx, mut lost_rx) = oneshot::channel();
        let keeper = tokio::spawn(keep_alive(
            Arc::clone(&self.shared),
            client.clone(),
            lease,
            granted.min(t.ttl) / 3,
            lost_tx,
        ));
        // etcd answers again: first remove our keys of earlier sessions, which would make the
        // campaign wait for their leases to expire (a whole TTL after a short etcd outage).
        if !self.stale.is_empty() {
            self.revoke_stale(client).await;
        }
        let end = self.campaigns(client, lease, &mut lost_rx).await;
        keeper.abort();
        self.shared.set_lease(None);
        // Give the lease back so that the next owner need not wait for it to expire. Its
        // keys, our campaign key among them, go with it. Best effort: etcd may be away, and
        // then it is revoked when etcd answers again.
        match call(
            "LeaseRevoke",
            t.request.min(Duration::from_secs(1)),
            client.lease_revoke(lease),
        )
        .await
        {
            Ok(()) => {}
            Err(Error::Etcd { message, .. }) if message.starts_with("NotFound") => {}
            Err(e) => {
                tracing::debug!(lease = %format!("{lease:x}"), "could not revoke the lease, will retry: {}", e.chain());
                // A bounded list: older leases expire by themselves.
                if self.stale.len() >= 4 {
                    self.stale.remove(0);
                }
                self.stale.push(lease);
            }
        }
        end
    }

    /// Campaign, own, campaign again, … for as long as the lease lives.
    async fn campaigns(
        &mut self,
        client: &EtcdClient,
        lease: i64,
        lost: &mut oneshot::Receiver<String>,
    ) -> End {
        let shared = Arc::clone(&self.shared);
        loop {
            let campaign = client.campaign(&shared.name, shared.id.as_bytes(), lease);
            tokio::pin!(campaign);
            let won = loop {
                tokio::select! {
                    r = &mut campaign => break r,
                    _ = self.stop.changed() => return End::Stop,
                    why = &mut *lost => return End::LeaseLost(why.unwrap_or_else(|_| "the keep-alive task ended".into())),
                    Some(Command::Resign(reply)) = self.commands.recv() => { let _ = reply.send(false); }
                }
            };
            let leader = match won {
                Ok(leader) => leader,
                Err(status) => {
                    tracing::warn!(id = %shared.id, "{}", etcd_error("Campaign", &status).chain());
                    match self.pause(Some(lost)).await {
                        Some(end) => return end,
                        None => continue,
                    }
                }
            };
            let watch = match self.confirm(client, &leader, lease).await {
                Ok(watch) => watch,
                Err(why) => {
                    tracing::warn!(id = %shared.id, "campaign won but not confirmed: {why}; campaigning again");
                    let _ = call("Resign", shared.timings.request, client.resign(leader)).await;
                    match self.pause(Some(lost)).await {
                        Some(end) => return end,
                        None => continue,
                    }
                }
            };
            match self.own(client, leader, watch, lost).await {
                Term::Again => self.backoff.reset(),
                Term::End(end) => return end,
            }
        }
    }

    /// After a campaign returns: watch our key (to notice if it goes), then check that the
    /// election's leader really is our key on our lease (a campaign can return after the
    /// lease behind it expired).
    async fn confirm(
        &self,
        client: &EtcdClient,
        leader: &LeaderKey,
        lease: i64,
    ) -> Result<BiStream<WatchRequest, WatchResponse>, String> {
        let t = self.shared.timings;
        if leader.lease != lease {
            return Err(format!(
                "etcd answered with lease {:x}, ours is {lease:x}",
                leader.lease
            ));
        }
        let watch = open_watch(client, leader, t.request).await?;
        match call("Leader", t.request, client.leader(&self.shared.name))
            .await
            .map_err(|e| e.chain())?
        {
            Some(kv) if kv.key == leader.key && kv.lease == lease => Ok(watch),
            Some(kv) => Err(format!(
                "the leader is {} on lease {:x}",
                String::from_utf8_lossy(&kv.key),
                kv.lease
            )),
            None => Err("etcd reports no leader".to_owned()),
        }
    }

    /// Act as the owner until the lease is lost, our key goes, a resign, or a stop.
    async fn own(
        &mut self,
        client: &EtcdClient,
        leader: LeaderKey,
        watch: BiStream<WatchRequest, WatchResponse>,
        lost: &mut oneshot::Receiver<String>,
    ) -> Term {
        let shared = Arc::clone(&self.shared);
        let t = shared.timings;
        if !shared.become_owner(leader.clone()) {
            // Too late: the lease deadline passed while confirming; the keep-alive task
            // reports the loss (or renews, and the next campaign returns at once).
            return Term::Again;
        }
        let mut watch = Some(watch);
        let rewatch = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(rewatch);
        loop {
            tokio::select! {
                why = &mut *lost => {
                    let why = why.unwrap_or_else(|_| "the keep-alive task ended".into());
                    shared.step_down(&why);
                    return Term::End(End::LeaseLost(why));
                }
                _ = self.stop.changed() => {
                    shared.step_down("the election is stopping");
                    let _ = call("Resign", t.request.min(Duration::from_secs(1)), client.resign(leader)).await;
                    return Term::End(End::Stop);
                }
                Some(Command::Resign(reply)) = self.commands.recv() => {
                    shared.step_down("resigned on request");
                    let resigned = call("Resign", t.request, client.resign(leader)).await;
                    let _ = reply.send(true);
                    return match resigned {
                        Ok(()) => Term::Again,
                        // The key may still be there: revoking the lease (end of session) removes it.
                        Err(e) => Term::End(End::Failed(e.chain())),
                    };
                }
                msg = async { match watch.as_mut() { Some((_, s)) => s.message().await, None => std::future::pending().await } } => {
                    match msg {
                        Ok(Some(resp)) if resp.canceled || resp.compact_revision != 0 => {
                            shared.step_down(&format!("etcd canceled the watch on our election key ({})", resp.cancel_reason));
                            let _ = call("Resign", t.request, client.resign(leader)).await;
                            return Term::Again;
                        }
                        Ok(Some(resp)) => {
                            if resp.events.iter().any(|e| e.r#type == EVENT_DELETE) {
                                shared.step_down("our election key was deleted");
                                return Term::Again;
                            }
                        }
                        Ok(None) | Err(_) => {
                            // etcd away: ownership now rests on the lease deadline alone;
                            // watch again shortly (from the key's creation: no delete is missed).
                            tracing::debug!(id = %shared.id, "the watch on our election key broke; watching again");
                            watch = None;
                            rewatch.as_mut().reset(tokio::time::Instant::now() + t.backoff_max.min(Duration::from_secs(1)));
                        }
                    }
                }
                () = &mut rewatch, if watch.is_none() => {
                    match open_watch(client, &leader, t.request).await {
                        Ok(w) => watch = Some(w),
                        Err(_) => rewatch.as_mut().reset(tokio::time::Instant::now() + t.backoff_max.min(Duration::from_secs(1))),
                    }
                }
            }
        }
    }
}

/// Watch `leader.key` from just after its creation and wait for etcd's "created" answer.
async fn open_watch(
    client: &EtcdClient,
    leader: &LeaderKey,
    limit: Duration,
) -> Result<BiStream<WatchRequest, WatchResponse>, String> {
    let opened = async {
        let (tx, mut stream) = client
            .watch(&leader.key, leader.rev + 1)
            .await
            .map_err(|s| etcd_error("Watch", &s).chain())?;
        match stream.message().await {
            Ok(Some(resp)) if resp.created && !resp.canceled => {
                if resp.events.iter().any(|e| e.r#type == EVENT_DELETE) {
                    return Err("our election key is already deleted".to_owned());
                }
                Ok((tx, stream))
            }
            Ok(Some(resp)) => Err(format!(
                "etcd refused the watch on our election key ({})",
                resp.cancel_reason
            )),
            Ok(None) => Err("etcd closed the watch stream".to_owned()),
            Err(s) => Err(etcd_error("Watch", &s).chain()),
        }
    };
    timeout(limit, opened).await.unwrap_or_else(|_| {
        Err(Error::Timeout {
            op: "Watch",
            timeout: limit,
        }
        .chain())
    })
}

/// Renew the lease every `interval`, extend the owner deadline after each answered renewal,
/// and report the lease lost when etcd says it expired or the deadline passes unrenewed.
async fn keep_alive(
    shared: Arc<Shared>,
    client: EtcdClient,
    lease: i64,
    interval: Duration,
    lost: oneshot::Sender<String>,
) {
    let retry = (interval / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut stream: Option<BiStream<LeaseKeepAliveRequest, LeaseKeepAliveResponse>> = None;
    let mut next = Instant::now() + interval;
    let why = loop {
        let Some(deadline) = shared.lease_deadline(lease) else {
            break "the lease was dropped".to_owned();
        };
        tokio::time::sleep_until(next.min(deadline).into()).await;
        let sent = Instant::now();
        let Some(left) = shared
            .lease_deadline(lease)
            .and_then(|d| d.checked_duration_since(sent))
            .filter(|d| !d.is_zero())
        else {
            break "no keep-alive was answered before the owner deadline".to_owned();
        };
        match timeout(interval.min(left), renew(&client, lease, &mut stream)).await {
            Ok(Ok(ttl)) if ttl > 0 => {
                shared.renewed(
                    lease,
                    deadline_after(sent, Duration::from_secs(u64::try_from(ttl).unwrap_or(0))),
                );
                next = sent + interval;
            }
            Ok(Ok(_)) => break "etcd reports the lease expired".to_owned(),
            Ok(Err(status)) => {
                tracing::debug!(lease = %format!("{lease:x}"), "{}", etcd_error("LeaseKeepAlive", &status).chain());
                stream = None;
                next = Instant::now() + retry;
            }
            Err(_) => {
                tracing::debug!(lease = %format!("{lease:x}"), "a keep-alive got no answer within {:?}", interval.min(left));
                // Never reuse a stream after a timeout: a late answer there would be taken
                // for a renewal sent later than it was.
                stream = None;
                next = Instant::now() + retry;
            }
        }
    };
    shared.step_down(&why);
    let _ = lost.send(why);
}

/// One keep-alive round trip on `stream` (opened if needed): the TTL etcd renewed to.
async fn renew(
    client: &EtcdClient,
    lease: i64,
    stream: &mut Option<BiStream<LeaseKeepAliveRequest, LeaseKeepAliveResponse>>,
) -> Result<i64, Status> {
    let (_, responses) = match stream {
        Some(s) => {
            s.0.send(LeaseKeepAliveRequest { id: lease })
                .await
                .map_err(|_| Status::unavailable("the keep-alive stream is closed"))?;
            s
        }
        None => stream.insert(client.keep_alive(lease).await?),
    };
    match responses.message().await? {
        Some(resp) => Ok(resp.ttl),
        None => Err(Status::unavailable("etcd closed the keep-alive stream")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn config_is_validated() {
        let ok = EtcdConfig::new(["127.0.0.1:2379", "http://[::1]:2379"], "127.0.0.1:3930");
        ok.validate().unwrap();
        assert_eq!(ok.endpoints(Duration::from_secs(1)).unwrap().len(), 2);

        let err = |c: EtcdConfig| c.validate().unwrap_err().to_string();
        assert!(err(EtcdConfig::new(Vec::<String>::new(), "a:1")).contains("no etcd endpoint"));
        assert!(err(EtcdConfig::new(["https://e:2379"], "a:1")).contains("only plain http://"));
        assert!(err(EtcdConfig::new(["e:2379 x"], "a:1")).contains("is not HOST:PORT"));
        assert!(err(EtcdConfig::new(["e:2379"], " ")).contains("engine address"));
        assert!(err(EtcdConfig::new(["e:2379"], "a:1").with_ttl(Duration::ZERO)).contains("TTL"));
        assert!(
            err(EtcdConfig::new(["e:2379"], "a:1").with_ttl(Duration::from_millis(1500)))
                .contains("TTL")
        );
        assert!(err(EtcdConfig::new(["e:2379"], "a:1").with_ttl(MAX_TTL * 2)).contains("TTL"));
        assert!(
            err(EtcdConfig::new(["e:2379"], "a:1").with_election_key("")).contains("election key")
        );
    }

    #[test]
    fn the_owner_deadline_comes_before_the_lease_can_expire() {
        let sent = Instant::now();
        for secs in [1, 2, 3, 10, 60, 600, 86_400] {
            let ttl = Duration::from_secs(secs);
            let deadline = deadline_after(sent, ttl);
            assert!(deadline < sent + ttl, "ttl {secs}s");
            assert!(
                sent + ttl - deadline >= Duration::from_millis(500),
                "ttl {secs}s: margin at least 500 ms"
            );
            // Renewals every ttl/3 keep the deadline ahead of the next renewal.
            assert!(deadline > sent + ttl / 3, "ttl {secs}s");
        }
        assert_eq!(
            margin_for(Duration::from_secs(3)),
            Duration::from_millis(500)
        );
        assert_eq!(margin_for(Duration::from_secs(60)), Duration::from_secs(6));
    }

    #[test]
    fn a_node_owns_only_with_a_live_lease_and_its_own_key() {
        let now = Instant::now();
        let leader = LeaderKey {
            name: b"/e".to_vec(),
            key: b"/e/1".to_vec(),
            rev: 5,
            lease: 1,
        };
        let mut st = State {
            lease: Some((1, now + Duration::from_secs(1))),
            leader: Some(leader.clone()),
        };
        assert!(st.owns(now));
        assert!(
            !st.owns(now + Duration::from_secs(1)),
            "not at or past the deadline"
        );
        st.lease = Some((2, now + Duration::from_secs(1)));
        assert!(!st.owns(now), "a key won on another lease");
        st.lease = None;
        assert!(!st.owns(now));
        st = State {
            lease: Some((1, now + Duration::from_secs(1))),
            leader: None,
        };
        assert!(!st.owns(now));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(500));
        let steps: Vec<_> = (0..5).map(|_| b.next().as_millis()).collect();
        assert_eq!(steps, [100, 200, 400, 500, 500]);
        b.reset();
        assert_eq!(b.next(), Duration::from_millis(100));
    }

    #[tokio::test]
    async fn unreachable_etcd_means_no_owner_and_an_error_answer() {
        // A port nothing listens on: connection refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = EtcdElection::start(
            EtcdConfig::new([format!("127.0.0.1:{port}")], "127.0.0.1:3930")
                .with_ttl(Duration::from_secs(3)),
        )
        .unwrap();
        assert!(!e.is_owner());
        match e.owner().await {
            Ownership::Error(text) => assert!(text.contains("etcd Leader"), "{text}"),
            other => panic!("expected an error answer, got {other:?}"),
        }
        assert!(!e.resign().await.unwrap());
        e.close();
        assert!(matches!(e.owner().await, Ownership::Error(_)));
    }
}
