//! Real libzmq (the `zmq` crate's bundled build): the model's peers as real sockets on
//! loopback TCP, in this process, mirroring `brokers/src/zeromq/`.
//!
//! The stable side binds (PUB, PUSH, REP), the other connects, as in the model; with
//! `bind=pull` the PULL binds and the PUSH connects (and keeps its pipe while the PULL is
//! down, as libzmq's connecting side does). The producer
//! sends message `seq` as `<topic>p0:seq` (topics alternate `A`, `B`) and records the send and,
//! as the model does, its acknowledgement when `zmq_send` returned (PUB, PUSH) or when the reply
//! arrived (the Lazy Pirate client, which records a failure when it gives up after
//! `lazy-pirate.retries` attempts of `lazy-pirate.timeout` each, reopening its socket between
//! attempts as the zguide's `lpclient` does). The receiving peer records each message it hands
//! to its application, with its connection count as the session, spends `handler_ms` on it
//! and, as REP, replies.
//!
//! ZeroMQ has no broker process: a peer's `crash` closes its socket with `ZMQ_LINGER=0`, so
//! everything queued in it dies and its connections close as the kernel closes a killed
//! process's (the model's crash), and the peer opens a new socket when the fault ends. With
//! `syncpub` the PUB waits until a probe it sends has reached the subscriber before its first
//! real message: the zguide's node coordination.

use crate::plan::Who;
use crate::scenario::{RealRun, RealSpec};
use crate::{nap, Control, Recorder, State};
use mqcheck_invariants::{MsgId, Op};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the drain waits for the history to settle: no broker to restart here.
const DRAIN: Duration = Duration::from_secs(5);
const PROBE: &[u8] = b"probe";

#[derive(Clone, Debug)]
struct Settings {
    pattern: String,
    /// `bind=pull`: the PULL binds, the PUSH connects.
    push_connects: bool,
    lazy_pirate: bool,
    syncpub: bool,
    sndhwm: i32,
    rcvhwm: i32,
    timeout_ms: u64,
    retries: u64,
    messages: u32,
    pace_ms: u64,
    handler_ms: u64,
}

fn hwm(v: u64) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn topic(seq: u32) -> char {
    if seq.is_multiple_of(2) {
        'A'
    } else {
        'B'
    }
}

fn body(seq: u32) -> String {
    format!("{}p0:{seq}", topic(seq))
}

fn parse(body: &[u8]) -> Option<MsgId> {
    let text = std::str::from_utf8(body).ok()?;
    let (_, rest) = text.split_once('p')?;
    let (producer, seq) = rest.split_once(':')?;
    Some(MsgId {
        producer: producer.parse().ok()?,
        seq: seq.parse().ok()?,
    })
}

fn socket(ctx: &zmq::Context, kind: zmq::SocketType, s: &Settings) -> Result<zmq::Socket, String> {
    let sock = ctx.socket(kind).map_err(|e| format!("zmq socket: {e}"))?;
    sock.set_linger(0)
        .and_then(|_| sock.set_sndhwm(s.sndhwm))
        .and_then(|_| sock.set_rcvhwm(s.rcvhwm))
        .and_then(|_| sock.set_rcvtimeo(50))
        .and_then(|_| sock.set_sndtimeo(50))
        .map_err(|e| format!("zmq setsockopt: {e}"))?;
    Ok(sock)
}

/// The receiving peer (PULL, SUB or REP): opens its socket, hands what arrives to its
/// application, and dies and comes back as its control says.
fn receiver(
    ctx: zmq::Context,
    endpoint: String,
    s: Settings,
    rec: Recorder,
    ctl: Control,
    synced: Arc<AtomicBool>,
) -> Result<(), String> {
    let (kind, name, binds) = match s.pattern.as_str() {
        "push-pull" => (zmq::PULL, "pull0", s.push_connects),
        "pub-sub" => (zmq::SUB, "sub0", false),
        _ => (zmq::REP, "rep0", true),
    };
    let mut session: u64 = 0;
    loop {
        if ctl.wait_until_up() == State::Stop {
            return Ok(());
        }
        let sock = socket(&ctx, kind, &s)?;
        if binds {
            // The port was just freed by the crashed socket: retry while the kernel lets go.
            let mut tries = 0;
            while let Err(e) = sock.bind(&endpoint) {
                tries += 1;
                if tries > 100 {
                    return Err(format!("zmq bind {endpoint}: {e}"));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        } else {
            sock.connect(&endpoint)
                .map_err(|e| format!("zmq connect {endpoint}: {e}"))?;
        }
        if kind == zmq::SUB {
            sock.set_subscribe(b"")
                .map_err(|e| format!("zmq subscribe: {e}"))?;
        }
        session += 1;
        loop {
            match ctl.wait_while_paused() {
                State::Up => {}
                State::Crashed => break,
                State::Stop | State::Paused => return Ok(()),
            }
            let Ok(data) = sock.recv_bytes(0) else {
                continue;
            };
            if data == PROBE {
                synced.store(true, Ordering::SeqCst);
                continue;
            }
            let Some(msg) = parse(&data) else {
                continue;
            };
            rec.record(
                name,
                Op::Deliver {
                    msg,
                    group: 0,
                    consumer: 0,
                    scope: 0,
                    position: None,
                    session,
                    redelivered: None,
                },
            );
            nap(&ctl, s.handler_ms);
            if kind == zmq::REP {
                if ctl.get() == State::Crashed {
                    break;
                }
                let _ = sock.send(data, 0);
            }
        }
        drop(sock);
    }
}

/// Sends with `ZMQ_SNDTIMEO` in steps, so a PUSH blocked at its high-water mark (or with no
/// peer) still sees the run stop; `false` when it stopped before the send.
fn send_blocking(sock: &zmq::Socket, data: &[u8], ctl: &Control) -> bool {
    loop {
        match sock.send(data, 0) {
            Ok(()) => return true,
            Err(zmq::Error::EAGAIN) if ctl.get() != State::Stop => continue,
            Err(_) => return false,
        }
    }
}

fn producer(
    ctx: zmq::Context,
    endpoint: String,
    s: Settings,
    rec: Recorder,
    ctl: Control,
    synced: Arc<AtomicBool>,
) -> Result<(), String> {
    let send_op = |seq: u32| Op::Send {
        msg: MsgId { producer: 0, seq },
        scope: 0,
        audience: vec![0],
        key: None,
    };
    match s.pattern.as_str() {
        "push-pull" | "pub-sub" => {
            let kind = if s.pattern == "push-pull" {
                zmq::PUSH
            } else {
                zmq::PUB
            };
            let name = if kind == zmq::PUSH { "push0" } else { "pub0" };
            let sock = socket(&ctx, kind, &s)?;
            if kind == zmq::PUSH && s.push_connects {
                sock.connect(&endpoint)
                    .map_err(|e| format!("zmq connect {endpoint}: {e}"))?;
            } else {
                sock.bind(&endpoint)
                    .map_err(|e| format!("zmq bind {endpoint}: {e}"))?;
            }
            if kind == zmq::PUB && s.syncpub {
                while !synced.load(Ordering::SeqCst) && ctl.get() != State::Stop {
                    let _ = sock.send(PROBE, 0);
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            for seq in 0..s.messages {
                rec.record(name, send_op(seq));
                if !send_blocking(&sock, body(seq).as_bytes(), &ctl) {
                    return Ok(());
                }
                rec.record(
                    name,
                    Op::Ack {
                        msg: MsgId { producer: 0, seq },
                    },
                );
                nap(&ctl, s.pace_ms);
            }
        }
        _ => {
            let open = || -> Result<zmq::Socket, String> {
                let sock = socket(&ctx, zmq::REQ, &s)?;
                sock.connect(&endpoint)
                    .map_err(|e| format!("zmq connect {endpoint}: {e}"))?;
                Ok(sock)
            };
            let mut sock = open()?;
            for seq in 0..s.messages {
                let msg = MsgId { producer: 0, seq };
                rec.record("req0", send_op(seq));
                let mut attempts = 0;
                loop {
                    if ctl.get() == State::Stop {
                        return Ok(());
                    }
                    attempts += 1;
                    if sock.send(body(seq).as_bytes(), 0).is_err() {
                        sock = open()?;
                        continue;
                    }
                    if !s.lazy_pirate {
                        rec.record("req0", Op::Ack { msg });
                    }
                    // The plain client waits for ever (until the run stops).
                    let deadline = s
                        .lazy_pirate
                        .then(|| Instant::now() + Duration::from_millis(s.timeout_ms));
                    let mut answered = false;
                    while deadline.is_none_or(|d| Instant::now() < d) && ctl.get() != State::Stop {
                        if let Ok(reply) = sock.recv_bytes(0) {
                            answered = parse(&reply) == Some(msg);
                            break;
                        }
                    }
                    if answered {
                        if s.lazy_pirate {
                            rec.record("req0", Op::Ack { msg });
                        }
                        break;
                    }
                    if !s.lazy_pirate {
                        return Ok(());
                    }
                    // Lazy Pirate: close the socket, open a new one, resend, or give up.
                    sock = open()?;
                    if attempts >= s.retries {
                        rec.record(
                            "req0",
                            Op::Fail {
                                msg,
                                reason: format!("no reply after {attempts} attempts"),
                            },
                        );
                        break;
                    }
                }
                nap(&ctl, s.pace_ms);
            }
        }
    }
    Ok(())
}

/// Runs the spec on real sockets.
pub fn run(spec: &RealSpec) -> Result<RealRun, String> {
    let started = Instant::now();
    let c = &spec.config;
    let s = Settings {
        pattern: c.str("pattern").to_string(),
        push_connects: c.str("bind") == "pull",
        lazy_pirate: c.str("client") == "lazy-pirate",
        syncpub: c.bool("syncpub"),
        sndhwm: hwm(c.int("ZMQ_SNDHWM")),
        rcvhwm: hwm(c.int("ZMQ_RCVHWM")),
        timeout_ms: c.int("lazy-pirate.timeout"),
        retries: c.int("lazy-pirate.retries"),
        messages: spec.messages,
        pace_ms: 1000 / u64::from(spec.rate.max(1)),
        handler_ms: u64::from(spec.handler_ms),
    };
    let port = crate::process::free_port().map_err(|e| e.to_string())?;
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let ctx = zmq::Context::new();
    let rec = Recorder::default();
    let (pub_ctl, con_ctl) = (Control::default(), Control::default());
    let synced = Arc::new(AtomicBool::new(false));
    let receiving = {
        let (ctx, e, s, rec, ctl, synced) = (
            ctx.clone(),
            endpoint.clone(),
            s.clone(),
            rec.clone(),
            con_ctl.clone(),
            synced.clone(),
        );
        std::thread::spawn(move || receiver(ctx, e, s, rec, ctl, synced))
    };
    if s.pattern == "req-rep" || s.push_connects {
        // The server (or the binding PULL) binds first, as a server runs before its clients.
        std::thread::sleep(Duration::from_millis(100));
    }
    let sending = {
        let (ctx, e, s, rec, ctl) = (ctx, endpoint, s, rec.clone(), pub_ctl.clone());
        std::thread::spawn(move || producer(ctx, e, s, rec, ctl, synced))
    };
    for a in &spec.plan.actions {
        let now = rec.ms();
        if a.at_ms > now {
            std::thread::sleep(Duration::from_millis(a.at_ms - now));
        }
        if let Who::Client(_) = a.who {
            con_ctl.apply(a.act);
        }
    }
    con_ctl.set(State::Up);
    // The producer ends on its own, or is stopped once the drain has waited long enough.
    let until = Instant::now()
        + DRAIN
        + Duration::from_millis(u64::from(spec.messages) * 1000 / u64::from(spec.rate.max(1)));
    while !sending.is_finished() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    let settled = crate::drain(&rec, DRAIN, Duration::from_millis(500));
    pub_ctl.set(State::Stop);
    con_ctl.set(State::Stop);
    let sent = sending
        .join()
        .map_err(|_| "the producer thread panicked".to_string())?;
    let received = receiving
        .join()
        .map_err(|_| "the receiver thread panicked".to_string())?;
    sent.and(received)?;
    Ok(RealRun {
        history: rec.history(),
        notes: vec!["a ZeroMQ peer's crash closes its socket with ZMQ_LINGER=0 in this process: its queues die, its connections close".into()],
        wall_ms: started.elapsed().as_millis() as u64,
        settled,
        masters: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_reads_back_as_its_message() {
        assert_eq!(
            parse(body(7).as_bytes()),
            Some(MsgId {
                producer: 0,
                seq: 7
            })
        );
        assert_eq!(parse(PROBE), None);
    }
}
