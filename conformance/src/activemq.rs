//! Real ActiveMQ Classic: one broker from the Debian package (KahaDB, a STOMP connector on
//! loopback), a producer and a consumer speaking STOMP 1.2 that mirror the model's JMS clients
//! (`brokers/src/activemq/`).
//!
//! The Debian package has no AMQP and Rust has no OpenWire client, so the clients speak STOMP,
//! which ActiveMQ maps onto the same JMS machinery: a `SEND` with `persistent:true` and a
//! `receipt` header is a synchronous persistent send (the receipt comes after the store, as
//! OpenWire's response does); without `receipt` it is one-way (`useAsyncSend`, or
//! `deliveryMode=NON_PERSISTENT`, which JMS sends one-way by default). `SUBSCRIBE` with
//! `activemq.prefetchSize` is the consumer's `queuePrefetch`; its `ack` header is the JMS
//! acknowledge mode: `client-individual` acknowledges each message after the handler returned
//! (a `MessageListener` under `AUTO_ACKNOWLEDGE`), `client` acknowledges cumulatively
//! (`CLIENT_ACKNOWLEDGE`), and `auto` lets the broker count a message consumed once dispatched
//! (the closest STOMP has to `receive()` under `AUTO_ACKNOWLEDGE`, which acknowledges before the
//! application sees the message). The `redelivered` header is JMSRedelivered.
//!
//! STOMP frames are a command line, header lines, a blank line, a body and a NUL: the client
//! below writes and reads them over a blocking `TcpStream`, with `heart-beat:0,0`.
//!
//! # Master/slave and the failover transport
//!
//! With `failover=true` two brokers share one KahaDB directory
//! ([`BrokerProcess::start_master_slave`]): the first takes `KahaDB/lock` and serves, the second
//! waits for the lock as a slave, its STOMP port closed. STOMP has no `failover:` transport, so
//! the clients do here what the model's failover clients do (`transport=failover`): after a lost
//! connection they connect to the next URI a second later, alternating until one answers; the
//! producer sends the message whose receipt it was waiting for again on the new connection and
//! fails no send; the consumer subscribes again, and its audit outlives the connections.
//! What differs from OpenWire's `failover:(…)`:
//!
//! - OpenWire's connection is one `ConnectionId` and `ProducerId` across its transports, marked
//!   fault tolerant, and a replayed send keeps its `MessageId`, so the broker's producer audit
//!   (`ProducerBrokerExchange.canDispatch`) drops a replay of what the store already holds. Each
//!   STOMP connection is a new connection with a new `ProducerId` (`ProtocolConverter`), and the
//!   broker gives the copy a new `MessageId`: a send stored before the old master died, its
//!   receipt lost, is stored twice. The consumer's audit, which keys on the message's id in the
//!   body, poison-acks the second copy (it goes to `ActiveMQ.DLQ`), where the model's broker
//!   never stores it: the history shows a dead letter the model's does not.
//! - The reconnect delay is the model's one second between attempts (`RECONNECT`), not
//!   `FailoverTransport`'s 10 ms doubling up to 30 s; URIs are taken in order (`randomize=false`).
//! - OpenWire keeps the session's prefetched messages apart from the delivered ones; here a
//!   message read from the socket is handed to the application at once, so "prefetched" is what
//!   still waits in the socket, which the audit never sees.

use crate::process::{BrokerProcess, HarnessError, Server, SharedKahaDb};
use crate::scenario::{RealRun, RealSpec};
use crate::{nap, play, Clients, Control, Recorder, State};
use mqcheck_brokers::activemq::RECONNECT;
use mqcheck_invariants::{MsgId, Op};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const QUEUE: &str = "/queue/mqcheck";
const DRAIN: Duration = Duration::from_secs(30);
const QUIET: Duration = Duration::from_secs(2);
/// How long the producer waits for a receipt before it gives the connection up: the model's
/// `sendTimeout` 0 waits for ever, and a dead connection is noticed by its reset or, silent, by the
/// inactivity monitor's `maxInactivityDuration` (30 s).
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(30);

/// One STOMP frame.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Frame {
    command: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Frame {
    fn new(command: &str, headers: &[(&str, &str)], body: &[u8]) -> Frame {
        Frame {
            command: command.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.to_vec(),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = format!("{}\n", self.command);
        for (k, v) in &self.headers {
            out += &format!("{k}:{v}\n");
        }
        out += "\n";
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes.push(0);
        bytes
    }

    /// Parses one frame without its NUL; heart-beat newlines before it are skipped.
    fn decode(raw: &[u8]) -> Option<Frame> {
        let start = raw.iter().position(|b| *b != b'\n' && *b != b'\r')?;
        let raw = &raw[start..];
        let split = raw.windows(2).position(|w| w == b"\n\n")?;
        let head = std::str::from_utf8(&raw[..split]).ok()?;
        let mut lines = head.lines();
        let command = lines.next()?.trim_end_matches('\r').to_string();
        let mut headers = BTreeMap::new();
        for line in lines {
            if let Some((k, v)) = line.trim_end_matches('\r').split_once(':') {
                // STOMP 1.2: the first of repeated headers counts.
                headers
                    .entry(k.to_string())
                    .or_insert_with(|| v.to_string());
            }
        }
        Some(Frame {
            command,
            headers,
            body: raw[split + 2..].to_vec(),
        })
    }

    fn header(&self, k: &str) -> Option<&str> {
        self.headers.get(k).map(String::as_str)
    }
}

/// A STOMP connection.
struct Stomp {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    pending: Vec<u8>,
}

/// What reading a frame gave.
enum Read {
    Frame(Frame),
    /// Nothing within the read timeout.
    Idle,
    /// The connection is gone.
    Closed,
}

impl Stomp {
    fn connect(addr: SocketAddr) -> Option<Stomp> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_millis(100))).ok()?;
        let _ = s.set_nodelay(true);
        let mut c = Stomp {
            writer: s.try_clone().ok()?,
            reader: BufReader::new(s),
            pending: Vec::new(),
        };
        c.send(&Frame::new(
            "CONNECT",
            &[
                ("accept-version", "1.2"),
                ("host", "localhost"),
                ("heart-beat", "0,0"),
            ],
            b"",
        ))?;
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            match c.read() {
                Read::Frame(f) if f.command == "CONNECTED" => return Some(c),
                Read::Frame(_) | Read::Closed => return None,
                Read::Idle => {}
            }
        }
        None
    }

    fn send(&mut self, f: &Frame) -> Option<()> {
        self.writer.write_all(&f.encode()).ok()
    }

    fn read(&mut self) -> Read {
        match self.reader.read_until(0, &mut self.pending) {
            Ok(0) => Read::Closed,
            Ok(_) if self.pending.last() == Some(&0) => {
                let raw = std::mem::take(&mut self.pending);
                match Frame::decode(&raw[..raw.len() - 1]) {
                    Some(f) => Read::Frame(f),
                    None => Read::Idle,
                }
            }
            Ok(_) => Read::Closed,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Read::Idle,
            Err(_) => Read::Closed,
        }
    }
}

#[derive(Clone, Debug)]
struct Settings {
    persistent: bool,
    sync_send: bool,
    prefetch: u64,
    ack: &'static str,
    messages: u32,
    pace_ms: u64,
    handler_ms: u64,
}

/// What the clients note for the run's report, beside the history.
type Notes = Arc<Mutex<Vec<String>>>;

fn note(notes: &Notes, text: String) {
    notes.lock().unwrap_or_else(|e| e.into_inner()).push(text);
}

/// The broker URIs a client connects to: `tcp://` names the first broker only;
/// `failover:(tcp://amq1,tcp://amq2)` names both.
#[derive(Clone, Debug)]
struct Uris {
    addrs: Vec<SocketAddr>,
    failover: bool,
}

/// A client's way to its broker. `tcp://` connects again at once after a loss, then every
/// 200 ms. `failover:` takes the next URI, [`RECONNECT`] later, after each lost connection and
/// each failed attempt, as the model's failover transport does (`Transport::next_broker`; the
/// real `FailoverTransport` starts at 10 ms and backs off).
struct Link {
    who: &'static str,
    uris: Uris,
    at: usize,
    failed: bool,
    /// The URI of the last connection that opened.
    reached: Option<usize>,
    notes: Notes,
}

impl Link {
    fn new(who: &'static str, uris: &Uris, notes: &Notes) -> Link {
        Link {
            who,
            uris: uris.clone(),
            at: 0,
            failed: false,
            reached: None,
            notes: notes.clone(),
        }
    }

    /// Opens a connection, trying until one opens; `None` when the client crashed or the run
    /// stopped first.
    fn open(&mut self, ctl: &Control, rec: &Recorder) -> Option<Stomp> {
        loop {
            if self.failed && self.uris.failover {
                nap(ctl, RECONNECT.as_millis() as u64);
                self.at = (self.at + 1) % self.uris.addrs.len();
            }
            if ctl.wait_while_paused() != State::Up {
                return None;
            }
            if let Some(c) = Stomp::connect(self.uris.addrs[self.at]) {
                self.failed = false;
                if self.reached.replace(self.at) != Some(self.at) && self.uris.addrs.len() > 1 {
                    note(
                        &self.notes,
                        format!("{} connected to n{} at {} ms", self.who, self.at, rec.ms()),
                    );
                }
                return Some(c);
            }
            self.failed = true;
            if !self.uris.failover {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }

    fn lost(&mut self) {
        self.failed = true;
    }
}

/// Sends one message on `c` and, when synchronous, waits for its receipt.
fn send_one(c: &mut Stomp, seq: u32, s: &Settings) -> Result<(), &'static str> {
    let receipt = seq.to_string();
    let body = format!("p0:{seq}");
    let persistent = if s.persistent { "true" } else { "false" };
    let mut headers = vec![("destination", QUEUE), ("persistent", persistent)];
    if s.sync_send {
        headers.push(("receipt", receipt.as_str()));
    }
    if c.send(&Frame::new("SEND", &headers, body.as_bytes()))
        .is_none()
    {
        return Err("the connection failed during the send");
    }
    if !s.sync_send {
        return Ok(());
    }
    let until = Instant::now() + RECEIPT_TIMEOUT;
    loop {
        if Instant::now() >= until {
            return Err("no response within the send's timeout");
        }
        match c.read() {
            Read::Frame(f) if f.command == "RECEIPT" => {
                if f.header("receipt-id") == Some(receipt.as_str()) {
                    return Ok(());
                }
            }
            Read::Frame(f) if f.command == "ERROR" => return Err("the broker answered ERROR"),
            Read::Frame(_) | Read::Idle => {}
            Read::Closed => return Err("the connection failed before the response"),
        }
    }
}

/// The producer. Over `tcp://` a send whose connection fails first fails. Over `failover:` it
/// does not: the send goes again on the next connection, as `ConnectionStateTracker` replays
/// it — but a STOMP connection is a new `ProducerId` with a new `MessageId` for the copy, not a
/// fault-tolerant one, so the broker's producer audit does not drop a copy of a send it had
/// stored before the connection failed; the consumer's audit, keyed on the message, does.
fn producer(uris: Uris, s: Settings, rec: Recorder, ctl: Control, notes: Notes) {
    let mut link = Link::new("p0", &uris, &notes);
    let mut conn: Option<Stomp> = None;
    let mut again: Vec<String> = Vec::new();
    'messages: for seq in 0..s.messages {
        nap(&ctl, s.pace_ms);
        let msg = MsgId { producer: 0, seq };
        let mut sent = false;
        loop {
            // The JMS producer sends only on an open connection.
            if conn.is_none() {
                conn = link.open(&ctl, &rec);
            }
            let Some(c) = conn.as_mut() else {
                break 'messages;
            };
            if !sent {
                rec.record(
                    "p0",
                    Op::Send {
                        msg,
                        scope: 0,
                        audience: vec![0],
                        key: None,
                    },
                );
            } else {
                again.push(msg.to_string());
            }
            sent = true;
            match send_one(c, seq, &s) {
                Ok(()) => {
                    rec.record("p0", Op::Ack { msg });
                    break;
                }
                Err(reason) => {
                    conn = None;
                    link.lost();
                    if !uris.failover {
                        rec.record(
                            "p0",
                            Op::Fail {
                                msg,
                                reason: reason.into(),
                            },
                        );
                        break;
                    }
                }
            }
        }
    }
    if !again.is_empty() {
        note(
            &notes,
            format!(
                "p0 sent {} again on a new connection after the first failed before its receipt: {}",
                again.len(),
                again.join(", ")
            ),
        );
    }
}

fn parse(body: &[u8]) -> Option<MsgId> {
    let text = std::str::from_utf8(body).ok()?;
    let (producer, seq) = text.strip_prefix('p')?.split_once(':')?;
    Some(MsgId {
        producer: producer.parse().ok()?,
        seq: seq.parse().ok()?,
    })
}

/// The consumer, with its connection's duplicate check (`checkForDuplicates`,
/// `ActiveMQMessageConsumer.dispatch`): a message its connection had handed the application
/// before is poison-acked, STOMP's `NACK` (`StompSubscription.onStompMessageNack` sends
/// `POISON_ACK_TYPE`), and the broker dead-letters it. The audit keys on the message's id in its
/// body: OpenWire's keys on the `MessageId`, which a replayed send keeps; the producer here never
/// restarts, so the two name the same sends. A `tcp://` client's new connection starts with an
/// empty audit; a `failover:` connection outlives its transports, and so does its audit, less
/// what a `CLIENT_ACKNOWLEDGE` session had not acknowledged (`clearDeliveredList`). A restarted
/// consumer is a new process: a new audit, and the first URI again.
fn consumer(uris: Uris, s: Settings, rec: Recorder, ctl: Control, notes: Notes) {
    let mut suppressed: Vec<String> = Vec::new();
    consume(&uris, &s, &rec, &ctl, &notes, &mut suppressed);
    if !suppressed.is_empty() {
        note(
            &notes,
            format!(
                "c0 poison-acked {} redelivered message(s) its connection had handed the application before: {}",
                suppressed.len(),
                suppressed.join(", ")
            ),
        );
    }
}

fn consume(
    uris: &Uris,
    s: &Settings,
    rec: &Recorder,
    ctl: &Control,
    notes: &Notes,
    suppressed: &mut Vec<String>,
) {
    let mut session: u64 = 0;
    'process: loop {
        let mut link = Link::new("c0", uris, notes);
        let mut audit: BTreeSet<MsgId> = BTreeSet::new();
        'connect: loop {
            if ctl.wait_until_up() == State::Stop {
                return;
            }
            let Some(mut c) = link.open(ctl, rec) else {
                continue 'process;
            };
            session += 1;
            if !uris.failover {
                audit.clear();
            }
            let prefetch = s.prefetch.to_string();
            let subscribe = Frame::new(
                "SUBSCRIBE",
                &[
                    ("destination", QUEUE),
                    ("id", "0"),
                    ("ack", s.ack),
                    ("activemq.prefetchSize", prefetch.as_str()),
                ],
                b"",
            );
            if c.send(&subscribe).is_none() {
                link.lost();
                continue;
            }
            loop {
                match ctl.wait_while_paused() {
                    State::Up => {}
                    // The consumer dies with what it prefetched: the kernel closes its connection.
                    State::Crashed => continue 'process,
                    State::Stop | State::Paused => return,
                }
                let f = match c.read() {
                    Read::Frame(f) if f.command == "MESSAGE" => f,
                    Read::Frame(_) | Read::Idle => continue,
                    Read::Closed => {
                        link.lost();
                        continue 'connect;
                    }
                };
                let Some(msg) = parse(&f.body) else {
                    continue;
                };
                let id = f.header("ack").unwrap_or_default().to_string();
                if s.ack != "auto" && !audit.insert(msg) {
                    suppressed.push(msg.to_string());
                    rec.record(
                        "c0",
                        Op::DeadLetter {
                            msg,
                            reason: "its connection had been dispatched it before (checkForDuplicates: suppressing duplicate delivery on connection): poison ack (STOMP NACK), dead-lettered to ActiveMQ.DLQ".into(),
                        },
                    );
                    if c.send(&Frame::new("NACK", &[("id", id.as_str())], b""))
                        .is_none()
                    {
                        link.lost();
                        continue 'connect;
                    }
                    continue;
                }
                rec.record(
                    "c0",
                    Op::Deliver {
                        msg,
                        group: 0,
                        consumer: 0,
                        scope: 0,
                        position: None,
                        session,
                        redelivered: Some(f.header("redelivered") == Some("true")),
                    },
                );
                nap(ctl, s.handler_ms);
                if ctl.get() == State::Crashed {
                    continue 'process;
                }
                if s.ack != "auto"
                    && c.send(&Frame::new("ACK", &[("id", id.as_str())], b""))
                        .is_none()
                {
                    if s.ack == "client" {
                        audit.remove(&msg);
                    }
                    link.lost();
                    continue 'connect;
                }
            }
        }
    }
}

/// Runs the spec against a fresh ActiveMQ broker, or (`failover=true`) a master and a slave on
/// one KahaDB.
pub fn run(spec: &RealSpec) -> Result<RealRun, HarnessError> {
    let started = Instant::now();
    let cfg = &spec.config;
    let persistent = cfg.str("deliveryMode") == "PERSISTENT";
    let s = Settings {
        persistent,
        sync_send: persistent && !cfg.bool("useAsyncSend"),
        prefetch: cfg.int("queuePrefetch"),
        ack: if cfg.str("consumer.api") == "receive" {
            "auto"
        } else if cfg.str("acknowledgeMode") == "CLIENT_ACKNOWLEDGE" {
            "client"
        } else {
            "client-individual"
        },
        messages: spec.messages,
        pace_ms: 1000 / u64::from(spec.rate.max(1)),
        handler_ms: u64::from(spec.handler_ms),
    };
    let mut brokers = if cfg.bool("failover") {
        BrokerProcess::start_master_slave(SharedKahaDb {
            lock_acquire_sleep_interval: cfg.int("lockAcquireSleepInterval"),
            lock_keep_alive_period: cfg.int("lockKeepAlivePeriod"),
        })?
    } else if spec.plan.needs_network() {
        vec![BrokerProcess::start_isolated(Server::ActiveMq)?]
    } else {
        vec![BrokerProcess::start(Server::ActiveMq)?]
    };
    let failover = cfg.str("transport") == "failover";
    let mut addrs: Vec<SocketAddr> = brokers.iter().map(BrokerProcess::address).collect();
    if !failover {
        addrs.truncate(1);
    }
    let uris = Uris { addrs, failover };
    let rec = Recorder::default();
    let notes = Notes::default();
    let (pub_ctl, con_ctl) = (Control::default(), Control::default());
    let producing = {
        let (s, uris, rec, ctl, notes) = (
            s.clone(),
            uris.clone(),
            rec.clone(),
            pub_ctl.clone(),
            notes.clone(),
        );
        std::thread::spawn(move || producer(uris, s, rec, ctl, notes))
    };
    let consuming = {
        let (rec, ctl, notes) = (rec.clone(), con_ctl.clone(), notes.clone());
        std::thread::spawn(move || consumer(uris, s, rec, ctl, notes))
    };
    let clients = Clients {
        producer: (producing, pub_ctl),
        consumer: (consuming, con_ctl),
    };
    let mut run = play(
        started,
        &spec.plan,
        &mut brokers,
        &rec,
        clients,
        (DRAIN, QUIET),
    )?;
    run.notes
        .extend(notes.lock().unwrap_or_else(|e| e.into_inner()).drain(..));
    if cfg.bool("failover") {
        run.masters = brokers.iter().map(BrokerProcess::times_master).collect();
        let told: Vec<String> = run
            .masters
            .iter()
            .enumerate()
            .map(|(i, n)| format!("n{i} {n} time(s)"))
            .collect();
        run.notes.push(format!(
            "took the KahaDB lock and opened its connector: {}",
            told.join(", ")
        ));
    }
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_survives_encoding_and_heart_beats_before_it() {
        let f = Frame::new(
            "MESSAGE",
            &[("ack", "ID:1"), ("redelivered", "true")],
            b"p0:3",
        );
        let mut raw = b"\n\n".to_vec();
        let encoded = f.encode();
        raw.extend_from_slice(&encoded[..encoded.len() - 1]);
        assert_eq!(Frame::decode(&raw), Some(f));
        assert_eq!(
            parse(b"p0:3"),
            Some(MsgId {
                producer: 0,
                seq: 3
            })
        );
        assert_eq!(Frame::decode(b"\n"), None);
    }
}
