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

use crate::process::{BrokerProcess, HarnessError, Server};
use crate::scenario::{RealRun, RealSpec};
use crate::{nap, play, Clients, Control, Recorder, State};
use mqcheck_invariants::{MsgId, Op};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const QUEUE: &str = "/queue/mqcheck";
const DRAIN: Duration = Duration::from_secs(30);
const QUIET: Duration = Duration::from_secs(2);
/// How long the producer waits for a receipt (the model's `sendTimeout` 0 waits for ever; a
/// dead connection is noticed by its reset).
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

fn producer(addr: SocketAddr, s: Settings, rec: Recorder, ctl: Control) {
    let mut conn: Option<Stomp> = None;
    for seq in 0..s.messages {
        nap(&ctl, s.pace_ms);
        let msg = MsgId { producer: 0, seq };
        // The JMS producer sends only on an open connection.
        while conn.is_none() {
            if ctl.get() == State::Stop {
                return;
            }
            conn = Stomp::connect(addr);
            if conn.is_none() {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        let c = conn.as_mut().expect("connected");
        rec.record(
            "p0",
            Op::Send {
                msg,
                scope: 0,
                audience: vec![0],
                key: None,
            },
        );
        let receipt = seq.to_string();
        let body = format!("p0:{seq}");
        let persistent = if s.persistent { "true" } else { "false" };
        let mut headers = vec![("destination", QUEUE), ("persistent", persistent)];
        if s.sync_send {
            headers.push(("receipt", receipt.as_str()));
        }
        let fail = |rec: &Recorder, reason: &str| {
            rec.record(
                "p0",
                Op::Fail {
                    msg,
                    reason: reason.into(),
                },
            )
        };
        if c.send(&Frame::new("SEND", &headers, body.as_bytes()))
            .is_none()
        {
            fail(&rec, "the connection failed during the send");
            conn = None;
            continue;
        }
        if !s.sync_send {
            rec.record("p0", Op::Ack { msg });
            continue;
        }
        let until = Instant::now() + RECEIPT_TIMEOUT;
        let answered = loop {
            if Instant::now() >= until {
                break Err("no response within the send's timeout");
            }
            match c.read() {
                Read::Frame(f) if f.command == "RECEIPT" => {
                    if f.header("receipt-id") == Some(receipt.as_str()) {
                        break Ok(());
                    }
                }
                Read::Frame(f) if f.command == "ERROR" => break Err("the broker answered ERROR"),
                Read::Frame(_) | Read::Idle => {}
                Read::Closed => break Err("the connection failed before the response"),
            }
        };
        match answered {
            Ok(()) => rec.record("p0", Op::Ack { msg }),
            Err(reason) => {
                fail(&rec, reason);
                conn = None;
            }
        }
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

fn consumer(addr: SocketAddr, s: Settings, rec: Recorder, ctl: Control) {
    let mut session: u64 = 0;
    'connect: loop {
        if ctl.wait_until_up() == State::Stop {
            return;
        }
        let Some(mut c) = Stomp::connect(addr) else {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        session += 1;
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
            continue;
        }
        loop {
            match ctl.wait_while_paused() {
                State::Up => {}
                // The consumer dies with what it prefetched: the kernel closes its connection.
                State::Crashed => continue 'connect,
                State::Stop | State::Paused => return,
            }
            let f = match c.read() {
                Read::Frame(f) if f.command == "MESSAGE" => f,
                Read::Frame(_) | Read::Idle => continue,
                Read::Closed => continue 'connect,
            };
            let Some(msg) = parse(&f.body) else {
                continue;
            };
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
            nap(&ctl, s.handler_ms);
            if s.ack != "auto" {
                let id = f.header("ack").unwrap_or_default().to_string();
                if ctl.get() == State::Crashed
                    || c.send(&Frame::new("ACK", &[("id", id.as_str())], b""))
                        .is_none()
                {
                    continue 'connect;
                }
            }
        }
    }
}

/// Runs the spec against a fresh ActiveMQ broker.
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
    let broker = if spec.plan.needs_network() {
        BrokerProcess::start_isolated(Server::ActiveMq)?
    } else {
        BrokerProcess::start(Server::ActiveMq)?
    };
    let addr = broker.address();
    let rec = Recorder::default();
    let (pub_ctl, con_ctl) = (Control::default(), Control::default());
    let producing = {
        let (s, rec, ctl) = (s.clone(), rec.clone(), pub_ctl.clone());
        std::thread::spawn(move || producer(addr, s, rec, ctl))
    };
    let consuming = {
        let (rec, ctl) = (rec.clone(), con_ctl.clone());
        std::thread::spawn(move || consumer(addr, s, rec, ctl))
    };
    let clients = Clients {
        producer: (producing, pub_ctl),
        consumer: (consuming, con_ctl),
    };
    play(
        started,
        &spec.plan,
        &mut [broker],
        &rec,
        clients,
        (DRAIN, QUIET),
    )
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
