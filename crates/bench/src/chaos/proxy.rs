//! A TCP fault proxy (the toxiproxy approach, in-process): it listens on a local port,
//! forwards every connection to an upstream address, and breaks what it forwards below the
//! application protocol when told to — the chaos harness puts one between the engine and the
//! simulator, and one between the engine and PostgreSQL.
//!
//! Faults act on *answers*: the bytes the upstream sends after the client has sent some
//! (an HTTP response, the reply of a PostgreSQL round trip). Each answer that begins while a
//! fault is armed takes it — [`Fault::ResetAfterBytes`] resets the connection after that many
//! bytes of the answer, [`Fault::Stall`] holds the answer back, [`Fault::Bandwidth`] trickles
//! it — until the fault's [`Span`] is used up (a number of answers, or a time), after which
//! the proxy passes everything again by itself. [`Fault::Refuse`] acts on connections
//! instead, and [`FaultProxy::cut_all`] resets every open connection at once.
//!
//! Nothing here sleeps to wait for something: a harness awaits [`FaultProxy::wait_until`]
//! on the proxy's counters (connections, bytes, faults applied) or [`FaultProxy::until_passing`]
//! for the end of an armed fault.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What the proxy does to the answers (or connections) it forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Everything passes unchanged.
    Pass,
    /// After this many bytes of an answer, the connection is reset (RST to the client, and to
    /// the upstream): a body cut short by a dropped connection.
    ResetAfterBytes(u64),
    /// After this many bytes of an answer, the client gets a clean end of stream (FIN) and
    /// nothing more: a half-closed connection mid-body.
    HalfCloseAfterBytes(u64),
    /// After this many bytes of an answer, nothing more reaches the client, and the connection
    /// stays open: the client waits until its own timeout (packets silently dropped).
    BlackholeAfterBytes(u64),
    /// The answer is held back this long before it is forwarded (past the client's timeout,
    /// the client gives up first).
    Stall(Duration),
    /// The answer is forwarded at this many bytes per second (a slow body).
    Bandwidth(u64),
    /// New connections are refused. With [`Span::Answers`]`(n)` the next `n` connections are
    /// reset as soon as they are accepted (a listener cannot count the connections it
    /// refuses); with a time span or [`Span::UntilChanged`] the proxy stops listening, so the
    /// operating system refuses them (`ECONNREFUSED`), and listens again on the same port
    /// when the fault ends.
    Refuse,
}

/// How long an armed fault lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Span {
    /// The next `n` answers (for [`Fault::Refuse`]: connections) take it.
    Answers(u32),
    /// Answers that begin within this time take it (for [`Fault::Refuse`]: connections
    /// arriving within it are refused).
    For(Duration),
    /// Until the next [`FaultProxy::set`].
    UntilChanged,
}

/// What the proxy has done since it started; read with [`FaultProxy::stats`] or awaited with
/// [`FaultProxy::wait_until`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ProxyStats {
    /// Connections accepted (refused ones included).
    pub connections: u64,
    /// Connections open now.
    pub open: u64,
    /// Bytes forwarded from clients to the upstream, and from the upstream to clients.
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Answers that began (a client's bytes followed by the upstream's).
    pub answers: u64,
    /// Faults applied: answers that took a fault, connections refused, listener closures.
    pub applied: u64,
    /// Connections reset at once by [`Fault::Refuse`] with a count.
    pub refused: u64,
    /// Connections reset by [`FaultProxy::cut_all`].
    pub cut: u64,
    /// Connections whose upstream could not be reached (reset at once).
    pub upstream_unreachable: u64,
    /// Bumped by every [`FaultProxy::set`] and [`FaultProxy::cut_all`].
    pub generation: u64,
    /// The proxy listens (false while it refuses by not listening).
    pub listening: bool,
    /// No fault is armed.
    pub passing: bool,
}

/// The armed fault and what is left of it.
#[derive(Debug, Clone, Copy)]
struct Armed {
    fault: Fault,
    answers_left: Option<u32>,
    until: Option<Instant>,
}

impl Armed {
    const PASS: Armed = Armed {
        fault: Fault::Pass,
        answers_left: None,
        until: None,
    };
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    armed: Mutex<Armed>,
    stats: watch::Sender<ProxyStats>,
    /// Bumped when a fault is armed or disarmed: the accept loop looks again.
    plan: watch::Sender<u64>,
    /// Cancelled by `cut_all`: every connection accepted before holds the token of its time.
    cut: Mutex<CancellationToken>,
    stop: CancellationToken,
}

impl Shared {
    fn armed(&self) -> MutexGuard<'_, Armed> {
        // A panic while holding the lock leaves a consistent value: keep using it.
        self.armed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count(&self, f: impl FnOnce(&mut ProxyStats)) {
        self.stats.send_modify(f);
    }

    fn disarm(&self, armed: &mut Armed) {
        *armed = Armed::PASS;
        self.count(|s| s.passing = true);
        self.plan.send_modify(|g| *g += 1);
    }

    /// The fault an answer beginning now takes (consuming one unit of its span), if any.
    fn take_for_answer(&self) -> Option<Fault> {
        let mut armed = self.armed();
        self.take(&mut armed, |f| !matches!(f, Fault::Refuse | Fault::Pass))
    }

    /// Whether a connection accepted now is to be reset at once (a counted refusal).
    fn take_refusal(&self) -> bool {
        let mut armed = self.armed();
        if armed.answers_left.is_none() {
            return false;
        }
        self.take(&mut armed, |f| matches!(f, Fault::Refuse))
            .is_some()
    }

    fn take(&self, armed: &mut Armed, applies: impl Fn(Fault) -> bool) -> Option<Fault> {
        if armed.fault == Fault::Pass {
            return None;
        }
        if armed.until.is_some_and(|t| Instant::now() >= t) {
            self.disarm(armed);
            return None;
        }
        if !applies(armed.fault) {
            return None;
        }
        let fault = armed.fault;
        if let Some(left) = armed.answers_left.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                self.disarm(armed);
            }
        }
        self.count(|s| s.applied += 1);
        Some(fault)
    }

    /// While the proxy refuses by not listening: until when (`None`: until changed).
    fn refusing(&self) -> Option<Option<Instant>> {
        let mut armed = self.armed();
        if armed.fault != Fault::Refuse || armed.answers_left.is_some() {
            return None;
        }
        if armed.until.is_some_and(|t| Instant::now() >= t) {
            self.disarm(&mut armed);
            return None;
        }
        Some(armed.until)
    }

    fn cut_token(&self) -> CancellationToken {
        self.cut
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A running fault proxy. Dropping it stops it (and resets its connections).
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Listens on `127.0.0.1:0` and forwards every connection to `upstream`, passing
    /// everything until told otherwise. The listener is bound before this returns.
    pub async fn start(upstream: SocketAddr) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            armed: Mutex::new(Armed::PASS),
            stats: watch::Sender::new(ProxyStats {
                passing: true,
                listening: true,
                ..ProxyStats::default()
            }),
            plan: watch::Sender::new(0),
            cut: Mutex::new(CancellationToken::new()),
            stop: CancellationToken::new(),
        });
        let task = tokio::spawn(accept_loop(Arc::clone(&shared), listener, addr));
        Ok(FaultProxy {
            addr,
            shared,
            task: Some(task),
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The upstream every connection is forwarded to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Arms `fault` until the next call ([`Fault::Pass`] disarms).
    pub fn set(&self, fault: Fault) {
        self.set_for(fault, Span::UntilChanged);
    }

    /// Arms `fault` for `span`; the proxy passes everything again by itself after it.
    pub fn set_for(&self, fault: Fault, span: Span) {
        let armed = match (fault, span) {
            (Fault::Pass, _) | (_, Span::Answers(0)) => Armed::PASS,
            (_, Span::Answers(n)) => Armed {
                fault,
                answers_left: Some(n),
                until: None,
            },
            (_, Span::For(d)) => Armed {
                fault,
                answers_left: None,
                until: Some(Instant::now() + d),
            },
            (_, Span::UntilChanged) => Armed {
                fault,
                answers_left: None,
                until: None,
            },
        };
        *self.shared.armed() = armed;
        self.shared.count(|s| {
            s.generation += 1;
            s.passing = armed.fault == Fault::Pass;
        });
        self.shared.plan.send_modify(|g| *g += 1);
    }

    /// Resets every connection open now (both sides); returns how many. New connections
    /// are not affected.
    pub fn cut_all(&self) -> u64 {
        let open = self.stats().open;
        let old = {
            let mut cut = self
                .shared
                .cut
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            std::mem::replace(&mut *cut, CancellationToken::new())
        };
        old.cancel();
        self.shared.count(|s| s.generation += 1);
        open
    }

    pub fn stats(&self) -> ProxyStats {
        *self.shared.stats.borrow()
    }

    /// Waits until the counters satisfy `ready` (checked now, then at each change) and
    /// returns them: a readiness signal, never a poll.
    pub async fn wait_until(&self, mut ready: impl FnMut(&ProxyStats) -> bool) -> ProxyStats {
        let mut rx = self.shared.stats.subscribe();
        let seen = match rx.wait_for(|s| ready(s)).await {
            Ok(stats) => Some(*stats),
            // The sender lives in `self`: it cannot be gone while we borrow it.
            Err(_) => None,
        };
        seen.unwrap_or_else(|| self.stats())
    }

    /// Waits until no fault is armed: its span used up, or it was disarmed. A fault armed
    /// with a time span ends at its time even when no answer comes to notice it.
    pub async fn until_passing(&self) {
        let deadline = self.shared.armed().until;
        let passing = self.wait_until(|s| s.passing);
        match deadline {
            Some(at) => {
                tokio::select! {
                    _ = passing => {}
                    () = tokio::time::sleep_until(at) => {
                        let mut armed = self.shared.armed();
                        if armed.until.is_some_and(|t| Instant::now() >= t) {
                            self.shared.disarm(&mut armed);
                        }
                    }
                }
            }
            None => {
                passing.await;
            }
        }
    }

    /// Stops listening and resets every connection.
    pub async fn shutdown(mut self) {
        self.shared.stop.cancel();
        if let Some(task) = self.task.take() {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "the fault proxy's task failed");
            }
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

/// How many times, 20 ms apart, the proxy tries to listen again on its port after a refusal
/// (a port another process took meanwhile would make it give up: the clients then see
/// refusals until the proxy is dropped).
const REBIND_ATTEMPTS: u32 = 250;

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, addr: SocketAddr) {
    let mut listener = Some(listener);
    let mut changes = shared.plan.subscribe();
    loop {
        if let Some(until) = shared.refusing() {
            if listener.take().is_some() {
                shared.count(|s| {
                    s.applied += 1;
                    s.listening = false;
                });
            }
            tokio::select! {
                () = shared.stop.cancelled() => break,
                changed = changes.changed() => if changed.is_err() { break },
                () = sleep_until_some(until) => {}
            }
            continue;
        }
        let Some(current) = listener.as_ref() else {
            match rebind(addr, &shared.stop).await {
                Some(l) => {
                    listener = Some(l);
                    shared.count(|s| s.listening = true);
                }
                None => break,
            }
            continue;
        };
        tokio::select! {
            () = shared.stop.cancelled() => break,
            changed = changes.changed() => if changed.is_err() { break },
            accepted = current.accept() => match accepted {
                Ok((client, _)) => {
                    shared.count(|s| {
                        s.connections += 1;
                        s.open += 1;
                    });
                    tokio::spawn(connection(Arc::clone(&shared), client));
                }
                Err(e) => tracing::debug!(error = %e, "the fault proxy could not accept a connection"),
            },
        }
    }
}

async fn rebind(addr: SocketAddr, stop: &CancellationToken) -> Option<TcpListener> {
    for _ in 0..REBIND_ATTEMPTS {
        match TcpListener::bind(addr).await {
            Ok(l) => return Some(l),
            Err(e) => {
                tracing::debug!(error = %e, %addr, "the fault proxy cannot listen again yet");
                tokio::select! {
                    () = stop.cancelled() => return None,
                    () = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
            }
        }
    }
    tracing::warn!(%addr, "the fault proxy could not listen on its port again");
    None
}

/// How one answer is being forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Pass,
    ResetAfter(u64),
    HalfCloseAfter(u64),
    BlackholeAfter(u64),
    /// After a half-close or a blackhole: nothing more reaches the client.
    Discard,
    Throttle(u64),
}

/// What forwarding a chunk to the client came to.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Go,
    Reset,
    Close,
}

/// Bytes held back (a stall, a throttle) before the upstream is read no further.
const HOLD_MAX: usize = 1 << 20;
/// A throttled answer is released in slices this far apart.
const THROTTLE_TICK: Duration = Duration::from_millis(50);

struct Conn {
    shared: Arc<Shared>,
    cw: OwnedWriteHalf,
    answer: Answer,
    /// The client spoke since the last answer began: the next upstream bytes begin one.
    awaiting: bool,
    held: Vec<u8>,
    release_at: Option<Instant>,
    stalled: bool,
    next_slice: Instant,
}

impl Conn {
    /// The first bytes of an answer: it takes the armed fault, if any.
    fn begin_answer(&mut self) {
        self.shared.count(|s| s.answers += 1);
        self.answer = Answer::Pass;
        match self.shared.take_for_answer() {
            None | Some(Fault::Pass | Fault::Refuse) => {}
            Some(Fault::ResetAfterBytes(n)) => self.answer = Answer::ResetAfter(n),
            Some(Fault::HalfCloseAfterBytes(n)) => self.answer = Answer::HalfCloseAfter(n),
            Some(Fault::BlackholeAfterBytes(n)) => self.answer = Answer::BlackholeAfter(n),
            Some(Fault::Bandwidth(bps)) => self.answer = Answer::Throttle(bps.max(1)),
            Some(Fault::Stall(d)) => {
                self.stalled = true;
                self.release_at = Some(Instant::now() + d);
            }
        }
    }

    /// Bytes of the upstream for the client.
    async fn on_upstream_bytes(&mut self, bytes: &[u8]) -> io::Result<Flow> {
        if self.awaiting {
            self.awaiting = false;
            self.begin_answer();
        }
        if self.stalled || matches!(self.answer, Answer::Throttle(_)) {
            self.held.extend_from_slice(bytes);
            if !self.stalled && self.release_at.is_none() {
                self.release_at = Some(self.next_slice.max(Instant::now()));
            }
            return Ok(Flow::Go);
        }
        self.deliver(bytes).await
    }

    /// The held bytes' time has come: all of a stall, a slice of a throttle.
    async fn release(&mut self) -> io::Result<Flow> {
        self.release_at = None;
        let Answer::Throttle(bps) = self.answer else {
            // The end of a stall: everything held goes out.
            self.stalled = false;
            let held = std::mem::take(&mut self.held);
            return self.deliver(&held).await;
        };
        let tick_ms = u64::try_from(THROTTLE_TICK.as_millis()).unwrap_or(1);
        let per_tick = usize::try_from(bps.saturating_mul(tick_ms) / 1000)
            .unwrap_or(usize::MAX)
            .max(1);
        let n = per_tick.min(self.held.len());
        let slice: Vec<u8> = self.held.drain(..n).collect();
        self.next_slice = Instant::now() + THROTTLE_TICK;
        if !self.held.is_empty() {
            self.release_at = Some(self.next_slice);
        }
        self.deliver(&slice).await
    }

    /// Forwards `bytes` to the client as the answer's fault says.
    async fn deliver(&mut self, bytes: &[u8]) -> io::Result<Flow> {
        let limit = match self.answer {
            Answer::Pass | Answer::Throttle(_) => {
                self.write(bytes).await?;
                return Ok(Flow::Go);
            }
            Answer::Discard => return Ok(Flow::Go),
            Answer::ResetAfter(n) | Answer::HalfCloseAfter(n) | Answer::BlackholeAfter(n) => n,
        };
        let fits = usize::try_from(limit).unwrap_or(usize::MAX);
        if bytes.len() < fits {
            self.write(bytes).await?;
            let left = limit - bytes.len() as u64;
            self.answer = match self.answer {
                Answer::ResetAfter(_) => Answer::ResetAfter(left),
                Answer::HalfCloseAfter(_) => Answer::HalfCloseAfter(left),
                Answer::BlackholeAfter(_) => Answer::BlackholeAfter(left),
                other => other,
            };
            return Ok(Flow::Go);
        }
        self.write(&bytes[..fits]).await?;
        match self.answer {
            Answer::ResetAfter(_) => Ok(Flow::Reset),
            Answer::HalfCloseAfter(_) => {
                self.cw.shutdown().await?;
                self.answer = Answer::Discard;
                Ok(Flow::Close)
            }
            _ => {
                self.answer = Answer::Discard;
                Ok(Flow::Go)
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.cw.write_all(bytes).await?;
        let n = bytes.len() as u64;
        self.shared.count(|s| s.bytes_down += n);
        Ok(())
    }
}

/// How a connection ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// Both sides closed normally (or one side went away).
    Closed,
    /// Reset both sides: a fault, a cut, the proxy stopping.
    Reset,
    /// The client got its end of stream; wait for it to close (its reads are discarded).
    HalfClosed,
}

async fn connection(shared: Arc<Shared>, client: TcpStream) {
    let cut = shared.cut_token();
    if shared.take_refusal() {
        shared.count(|s| {
            s.refused += 1;
            s.open -= 1;
        });
        reset(&client);
        return;
    }
    let upstream = match TcpStream::connect(shared.upstream).await {
        Ok(u) => u,
        Err(e) => {
            tracing::debug!(error = %e, "the fault proxy cannot reach its upstream");
            shared.count(|s| {
                s.upstream_unreachable += 1;
                s.open -= 1;
            });
            reset(&client);
            return;
        }
    };
    // Latency is not the point here: small writes go at once, as they would directly.
    let _nodelay = client.set_nodelay(true).and(upstream.set_nodelay(true));
    let (mut cr, cw) = client.into_split();
    let (mut ur, mut uw) = upstream.into_split();
    let mut conn = Conn {
        shared: Arc::clone(&shared),
        cw,
        answer: Answer::Pass,
        awaiting: true,
        held: Vec::new(),
        release_at: None,
        stalled: false,
        next_slice: Instant::now(),
    };
    let mut up = vec![0_u8; 16 * 1024];
    let mut down = vec![0_u8; 16 * 1024];
    let end = loop {
        let release_at = conn.release_at;
        let reading_upstream = conn.held.len() < HOLD_MAX;
        tokio::select! {
            biased;
            () = shared.stop.cancelled() => break End::Reset,
            () = cut.cancelled() => {
                shared.count(|s| s.cut += 1);
                break End::Reset;
            }
            () = sleep_until_some(release_at), if release_at.is_some() => {
                match conn.release().await {
                    Ok(Flow::Go) => {}
                    Ok(Flow::Reset) | Err(_) => break End::Reset,
                    Ok(Flow::Close) => break End::HalfClosed,
                }
            }
            read = cr.read(&mut up) => match read {
                Ok(0) | Err(_) => break End::Closed,
                Ok(n) => {
                    if conn.answer == Answer::Discard {
                        continue;
                    }
                    if uw.write_all(&up[..n]).await.is_err() {
                        break End::Reset;
                    }
                    shared.count(|s| s.bytes_up += n as u64);
                    conn.awaiting = true;
                }
            },
            read = ur.read(&mut down), if reading_upstream => match read {
                Ok(0) | Err(_) => {
                    // The upstream is done: what is held goes out as it would have (a
                    // stall or throttle still applies), then the client gets its end.
                    if !conn.held.is_empty() && conn.answer != Answer::Discard {
                        let held = std::mem::take(&mut conn.held);
                        conn.stalled = false;
                        if conn.deliver(&held).await.is_err() {
                            break End::Reset;
                        }
                    }
                    break End::Closed;
                }
                Ok(n) => match conn.on_upstream_bytes(&down[..n]).await {
                    Ok(Flow::Go) => {}
                    Ok(Flow::Reset) | Err(_) => break End::Reset,
                    Ok(Flow::Close) => break End::HalfClosed,
                },
            },
        }
    };
    let Conn { mut cw, .. } = conn;
    match end {
        End::Closed => {
            let _closed = cw.shutdown().await;
        }
        End::Reset => {
            // A write half dropped sends FIN first; forgotten, the socket closes when its read
            // half goes, with the zero linger: RST alone.
            reset(cw.as_ref());
            reset(uw.as_ref());
            cw.forget();
            uw.forget();
            drop((cr, ur));
        }
        End::HalfClosed => {
            // The upstream goes now; the client reads its end of stream and closes (its
            // bytes meanwhile are dropped), unless the proxy is stopped or cut first.
            reset(uw.as_ref());
            uw.forget();
            drop(ur);
            loop {
                tokio::select! {
                    () = shared.stop.cancelled() => break,
                    () = cut.cancelled() => break,
                    read = cr.read(&mut up) => if matches!(read, Ok(0) | Err(_)) { break },
                }
            }
        }
    }
    shared.count(|s| s.open -= 1);
}

/// Resets a connection when it is dropped (RST instead of FIN).
fn reset(stream: &TcpStream) {
    if let Err(e) = stream.set_zero_linger() {
        tracing::debug!(error = %e, "cannot set SO_LINGER to reset a connection");
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that answers each line it reads with `size` bytes of `x` (a "response"),
    /// and counts its connections.
    async fn upstream(size: usize) -> (SocketAddr, JoinHandle<()>) {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0_u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&vec![b'x'; size]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        (addr, task)
    }

    /// Sends one request and reads until `want` bytes, the end of stream or an error.
    async fn ask(stream: &mut TcpStream, want: usize) -> (usize, Option<io::ErrorKind>) {
        if let Err(e) = stream.write_all(b"GET\n").await {
            return (0, Some(e.kind()));
        }
        let mut got = 0;
        let mut buf = vec![0_u8; 64 * 1024];
        while got < want {
            match stream.read(&mut buf).await {
                Ok(0) => return (got, None),
                Ok(n) => got += n,
                Err(e) => return (got, Some(e.kind())),
            }
        }
        (got, None)
    }

    #[tokio::test]
    async fn answers_pass_unchanged_and_are_counted() {
        let (up, _task) = upstream(10_000).await;
        let proxy = FaultProxy::start(up).await.expect("proxy");
        let mut c = TcpStream::connect(proxy.addr()).await.expect("connect");
        assert_eq!(ask(&mut c, 10_000).await, (10_000, None));
        assert_eq!(ask(&mut c, 10_000).await, (10_000, None));
        let stats = proxy.wait_until(|s| s.bytes_down == 20_000).await;
        assert_eq!((stats.connections, stats.answers, stats.applied), (1, 2, 0));
        assert_eq!(stats.bytes_up, 8);
    }

    #[tokio::test]
    async fn a_reset_after_bytes_cuts_the_next_answers_mid_body_then_passes_again() {
        let (up, _task) = upstream(200_000).await;
        let proxy = FaultProxy::start(up).await.expect("proxy");
        proxy.set_for(Fault::ResetAfterBytes(1_000), Span::Answers(2));
        for _ in 0..2 {
            let mut c = TcpStream::connect(proxy.addr()).await.expect("connect");
            let (got, error) = ask(&mut c, 200_000).await;
            assert!(got <= 1_000, "{got} bytes came through");
            assert_eq!(error, Some(io::ErrorKind::ConnectionReset));
        }
        proxy.until_passing().await;
        let mut c = TcpStream::connect(proxy.addr()).await.expect("connect");
        assert_eq!(ask(&mut c, 200_000).await, (200_000, None));
        assert_eq!(proxy.stats().applied, 2);
    }

    #[tokio::test]
    async fn a_half_close_ends_the_body_cleanly_and_a_blackhole_keeps_the_client_waiting() {
        let (up, _task) = upstream(50_000).await;
        let proxy = FaultProxy::start(up).await.expect("proxy");
        proxy.set_for(Fault::HalfCloseAfterBytes(700), Span::Answers(1));
        let mut c = TcpStream::connect(proxy.addr()).await.expect("connect");
        assert_eq!(
            ask(&mut c, 50_000).await,
            (700, None),
            "700 bytes, then EOF"
        );

        proxy.set_for(Fault::BlackholeAfterBytes(300), Span::Answers(1));
        let mut c = TcpStream::connect(proxy.addr()).await.expect("connect");
        let waited = tokio::time::timeout(Duration::from_millis(300), ask(&mut c, 50_000)).await;
        assert!(waited.is_err(), "the client is still waiting: {waited:?}");
        assert_eq!(proxy.stats().applied, 2);
    }

    #[tokio::test]
    async fn a_stall_holds_the_answer_and_bandwidth_paces_it() {
        let (up, _task) = upstream(4_000).await;
        let proxy = FaultProxy::start(up).await.expect("proxy");
        proxy.set_for(Fault::Stall(Duration::from_millis(300)), Span::Answers(1));
        let mut c = TcpStream::connect(proxy.addr()).await.expect("connect");
        let started = Instant::now();
        assert_eq!(ask(&mut c, 4_000).await, (4_000, None));
        assert!(started.elapsed() >= Duration::from_millis(300));

        // 20,000 bytes/s, 1,000 bytes a tick: 4,000 bytes take at least three ticks.
        proxy.set_for(Fault::Bandwidth(20_000), Span::Answers(1));
        let started = Instant::now();
        assert_eq!(ask(&mut c, 4_000).await, (4_000, None));
        assert!(
            started.elapsed() >= THROTTLE_TICK * 3,
            "{:?}",
            started.elapsed()
        );
        assert_eq!(proxy.stats().applied, 2);
    }

    #[tokio::test]
    async fn refusing_stops_listening_until_the_fault_ends_and_cut_all_resets_open_connections() {
        let (up, _task) = upstream(100).await;
        let proxy = FaultProxy::start(up).await.expect("proxy");
        let mut open = TcpStream::connect(proxy.addr()).await.expect("connect");
        assert_eq!(ask(&mut open, 100).await, (100, None));

        proxy.set(Fault::Refuse);
        proxy.wait_until(|s| !s.listening).await;
        let refused = TcpStream::connect(proxy.addr()).await;
        assert_eq!(
            refused.map_err(|e| e.kind()).err(),
            Some(io::ErrorKind::ConnectionRefused)
        );
        // The connection open before still works: refusing is about new ones.
        assert_eq!(ask(&mut open, 100).await, (100, None));

        proxy.set(Fault::Pass);
        proxy.wait_until(|s| s.listening).await;
        let mut again = TcpStream::connect(proxy.addr())
            .await
            .expect("listening again");
        assert_eq!(ask(&mut again, 100).await, (100, None));

        assert_eq!(proxy.cut_all(), 2);
        proxy.wait_until(|s| s.cut == 2 && s.open == 0).await;
        let mut buf = [0_u8; 16];
        let after = open.read(&mut buf).await;
        assert!(
            matches!(&after, Err(e) if e.kind() == io::ErrorKind::ConnectionReset),
            "{after:?}"
        );
    }

    #[tokio::test]
    async fn a_counted_refusal_resets_the_next_connections_at_once() {
        let (up, _task) = upstream(100).await;
        let proxy = FaultProxy::start(up).await.expect("proxy");
        proxy.set_for(Fault::Refuse, Span::Answers(1));
        let mut c = TcpStream::connect(proxy.addr()).await.expect("accepted");
        let (got, _) = ask(&mut c, 100).await;
        assert_eq!(got, 0);
        proxy.until_passing().await;
        let mut c = TcpStream::connect(proxy.addr()).await.expect("connect");
        assert_eq!(ask(&mut c, 100).await, (100, None));
        let stats = proxy.stats();
        assert_eq!((stats.refused, stats.applied), (1, 1));
    }
}
