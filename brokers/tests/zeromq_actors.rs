//! Unit tests of the ZeroMQ model's mechanisms, driving the peers directly: one message or
//! timer at a time, asserting on the commands each step emits and on what the applications
//! record. No simulator, no network: every delivery below is one the test chose.
//!
//! Producers (PUB, PUSH, REQ, DEALER) have ids `0..producers`, consumers (SUB, PULL, REP,
//! ROUTER) follow.

use mqcheck_brokers::zeromq::{Frames, ZeroMq, ZmqMsg, ZmqRandom, ZmqState, ZmqTimer};
use mqcheck_brokers::{AppLog, Workload};
use mqcheck_invariants::{MsgId, Op};
use stateright::actor::Command;

mod harness;

type Cmd = harness::Cmd<ZeroMq>;

/// The peers of one deployment with their current states.
type Peers = harness::Actors<ZeroMq>;

impl Peers {
    fn new(sets: &[&str], producers: u32, consumers: u32) -> Peers {
        Peers::of(&harness::system(
            sets,
            Workload {
                messages: 8,
                producers,
                consumers,
                ..Workload::default()
            },
        ))
    }

    /// What peer `i`'s application recorded so far.
    fn app(&self, i: usize) -> AppLog {
        match self.state(i) {
            ZmqState::Outgoing(s) => s.app.clone(),
            ZmqState::Incoming(s) => s.app.clone(),
            ZmqState::Req(s) => s.app.clone(),
            ZmqState::Rep(s) => s.app.clone(),
            ZmqState::Router(s) => s.app.clone(),
        }
    }
}

fn msg(producer: u32, seq: u32) -> MsgId {
    MsgId { producer, seq }
}

fn frames(producer: u32, index: u32) -> Frames {
    Frames {
        parts: vec![msg(producer, index)],
        topic: if index.is_multiple_of(2) { 'A' } else { 'B' },
    }
}

/// A message on a connection that was never reset.
fn message(frames: Frames) -> ZmqMsg {
    ZmqMsg::Message {
        connection: 0,
        frames,
    }
}

/// The messages sent in `cmds`, by destination.
fn sent(cmds: &[Cmd]) -> Vec<(usize, ZmqMsg)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Send(dst, m) => Some((usize::from(*dst), m.clone())),
            _ => None,
        })
        .collect()
}

fn timers(cmds: &[Cmd]) -> Vec<ZmqTimer> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::SetTimer(t, _) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

/// The observations recorded between two snapshots of an application log.
fn since(before: &AppLog, after: &AppLog) -> Vec<Op> {
    after.since(before.len()).cloned().collect()
}

/// A message too large for the kernels' buffers to hold more than the one streaming through.
const LARGE: &str = "message.bytes=1048576";

/// A PUB (id 0) with two SUBs (1, 2) connected and subscribed, publishing: the synchronized
/// publisher (`syncpub=true`) starts once both subscriptions arrived.
fn publisher(sets: &[&str]) -> Peers {
    let sets: Vec<&str> = sets.iter().copied().chain(["syncpub=true"]).collect();
    let mut p = Peers::new(&sets, 1, 2);
    p.start(0);
    p.random(0, ZmqRandom::Pace(20));
    for sub in [1, 2] {
        let hello = p.deliver(0, sub, ZmqMsg::Hello { connection: 0 });
        assert_eq!(sent(&hello), vec![(sub, ZmqMsg::Welcome { connection: 0 })]);
        assert!(
            timers(&hello).is_empty(),
            "no publishing before every subscription"
        );
        let prefix = if sets.contains(&"ZMQ_SUBSCRIBE=A") {
            "A"
        } else {
            ""
        };
        let sub_cmds = p.deliver(
            0,
            sub,
            ZmqMsg::Subscribe {
                prefix: prefix.into(),
            },
        );
        assert_eq!(timers(&sub_cmds).contains(&ZmqTimer::Send), sub == 2);
    }
    p
}

#[test]
fn pub_drops_for_the_subscriber_in_the_mute_state_only_and_never_blocks() {
    // 1 MiB messages: one at a time in the kernels' buffers, one more in the pipe.
    let mut p = publisher(&["pattern=pub-sub", "ZMQ_SNDHWM=1", LARGE]);
    let first = p.fire(0, ZmqTimer::Send);
    assert_eq!(
        sent(&first),
        vec![(1, message(frames(0, 0))), (2, message(frames(0, 0)))]
    );
    // sub1's socket took the message into its pipe; sub2's did not (paused, or slow).
    p.deliver(0, 1, ZmqMsg::Credit(1));
    let second = p.fire(0, ZmqTimer::Send);
    assert_eq!(
        sent(&second),
        vec![(1, message(frames(0, 1)))],
        "sub2's copy waits in its pipe: the connection is full"
    );
    assert!(!p.app(0).iter().any(|op| matches!(op, Op::Discard { .. })));
    p.deliver(0, 1, ZmqMsg::Credit(1));
    let before = p.app(0);
    let third = p.fire(0, ZmqTimer::Send);
    assert_eq!(sent(&third), vec![(1, message(frames(0, 2)))]);
    assert!(
        timers(&third).contains(&ZmqTimer::Send),
        "zmq_send returned"
    );
    let ops = since(&before, &p.app(0));
    assert!(
        matches!(&ops[0], Op::Send { msg: m, audience, .. } if *m == msg(0, 2) && *audience == vec![0, 1])
    );
    assert!(
        matches!(&ops[1], Op::Discard { msg: m, reason } if *m == msg(0, 2) && reason.contains("ZMQ_SNDHWM") && reason.contains("sub1")),
        "{ops:?}"
    );
    assert_eq!(ops[2], Op::Ack { msg: msg(0, 2) }, "acknowledged anyway");
    // sub2 reads again: the copy in its pipe goes out, and the next fits.
    assert_eq!(
        sent(&p.deliver(0, 2, ZmqMsg::Credit(1))),
        vec![(2, message(frames(0, 1)))]
    );
}

#[test]
fn small_messages_fill_the_kernels_buffers_before_the_pipe() {
    // Eight-byte messages (the default): the kernels' 16 KiB + 128 KiB hold thousands, so a
    // subscriber that returns no credit at all still gets every copy written to its connection.
    let mut p = publisher(&["pattern=pub-sub", "ZMQ_SNDHWM=1"]);
    for i in 0..8 {
        let cmds = p.fire(0, ZmqTimer::Send);
        assert_eq!(
            sent(&cmds),
            vec![(1, message(frames(0, i))), (2, message(frames(0, i)))]
        );
    }
    assert!(!p.app(0).iter().any(|op| matches!(op, Op::Discard { .. })));
    let pub0 = p.show(0);
    assert!(
        pub0.contains("pipe to sub1 (connection 0): 0 queued, 8 in the kernels' buffers"),
        "{pub0}"
    );
}

#[test]
fn subscriptions_filter_by_prefix_and_take_effect_only_when_they_arrive() {
    let mut p = publisher(&["pattern=pub-sub", "ZMQ_SUBSCRIBE=A"]);
    let a = p.fire(0, ZmqTimer::Send);
    assert_eq!(sent(&a).len(), 2, "topic A goes to both subscribers");
    let before = p.app(0);
    let b = p.fire(0, ZmqTimer::Send);
    assert!(sent(&b).is_empty(), "nobody subscribed to topic B");
    let ops = since(&before, &p.app(0));
    assert!(matches!(&ops[0], Op::Send { audience, .. } if audience.is_empty()));
    assert!(!ops.iter().any(|op| matches!(op, Op::Discard { .. })));
    // sub1 greets again on the same connection (it dialled again before the answer came):
    // nothing changes. sub2 reconnects: until its subscription arrives on the new connection,
    // PUB drops for it.
    p.deliver(0, 1, ZmqMsg::Hello { connection: 0 });
    p.deliver(0, 2, ZmqMsg::Reset);
    p.deliver(0, 2, ZmqMsg::Hello { connection: 1 });
    let before = p.app(0);
    let c = p.fire(0, ZmqTimer::Send);
    assert_eq!(sent(&c), vec![(1, message(frames(0, 2)))]);
    let ops = since(&before, &p.app(0));
    assert!(
        ops.iter().any(|op| matches!(op, Op::Discard { msg: m, reason } if *m == msg(0, 2) && reason.contains("no matching subscription from sub1"))),
        "{ops:?}"
    );
}

#[test]
fn push_round_robins_skips_mute_peers_and_blocks_when_all_are_mute() {
    let mut p = Peers::new(&["pattern=push-pull", "ZMQ_SNDHWM=1", LARGE], 1, 2);
    p.start(0);
    let pace = p.random(0, ZmqRandom::Pace(20));
    assert_eq!(timers(&pace), vec![ZmqTimer::Send]);
    // No peer yet: zmq_send blocks, nothing is acknowledged.
    let before = p.app(0);
    assert!(sent(&p.fire(0, ZmqTimer::Send)).is_empty());
    assert!(!since(&before, &p.app(0))
        .iter()
        .any(|op| matches!(op, Op::Ack { .. })));
    // A peer connects: the blocked message goes to it.
    let hello = p.deliver(0, 1, ZmqMsg::Hello { connection: 0 });
    assert!(sent(&hello).contains(&(1, message(frames(0, 0)))));
    assert_eq!(p.app(0).iter().last(), Some(&Op::Ack { msg: msg(0, 0) }));
    p.deliver(0, 2, ZmqMsg::Hello { connection: 0 });
    // Next in turn is pull1 (id 2).
    assert_eq!(
        sent(&p.fire(0, ZmqTimer::Send)),
        vec![(2, message(frames(0, 1)))]
    );
    // Both connections are full: the next two wait in the pipes, and zmq_send returns.
    for i in 2..4 {
        let queued = p.fire(0, ZmqTimer::Send);
        assert!(sent(&queued).is_empty(), "{queued:?}");
        assert_eq!(p.app(0).iter().last(), Some(&Op::Ack { msg: msg(0, i) }));
    }
    // Now both pipes are at ZMQ_SNDHWM: mute, and zmq_send blocks.
    let blocked = p.fire(0, ZmqTimer::Send);
    assert!(
        sent(&blocked).is_empty() && timers(&blocked).is_empty(),
        "{blocked:?}"
    );
    // pull1 reads a message: its pipe drains onto the connection and the blocked send goes
    // into it — not dropped.
    let credit = p.deliver(0, 2, ZmqMsg::Credit(1));
    assert_eq!(sent(&credit), vec![(2, message(frames(0, 3)))]);
    assert_eq!(p.app(0).iter().last(), Some(&Op::Ack { msg: msg(0, 4) }));
}

#[test]
fn pull_fair_queues_and_leaves_messages_on_the_connection_at_the_rcvhwm() {
    // Two PUSH peers (0, 1), one PULL (2) with room for one message per pipe.
    let mut p = Peers::new(&["pattern=push-pull", "ZMQ_RCVHWM=1"], 2, 1);
    let start = p.start(2);
    let hellos: Vec<usize> = sent(&start).iter().map(|(d, _)| *d).collect();
    assert_eq!(hellos, vec![0, 1], "PULL connects to every PUSH");
    p.random(2, ZmqRandom::Processing(10));
    let first = p.deliver(2, 0, message(frames(0, 0)));
    assert_eq!(sent(&first), vec![(0, ZmqMsg::Credit(1))]);
    assert_eq!(timers(&first), vec![ZmqTimer::Process]);
    let held = p.deliver(2, 0, message(frames(0, 1)));
    assert!(
        sent(&held).is_empty(),
        "the pipe is full: no credit, the PUSH stays mute"
    );
    p.deliver(2, 1, message(frames(1, 0)));
    let mut order = Vec::new();
    for _ in 0..3 {
        let before = p.app(2);
        p.fire(2, ZmqTimer::Process);
        for op in since(&before, &p.app(2)) {
            if let Op::Deliver {
                msg, scope, group, ..
            } = op
            {
                assert_eq!((scope, group), (0, 0));
                order.push(msg);
            }
        }
    }
    assert_eq!(
        order,
        vec![msg(0, 0), msg(1, 0), msg(0, 1)],
        "one from each peer in turn"
    );
}

#[test]
fn sub_reconnects_after_a_reset_sends_its_subscription_again_and_ignores_the_old_connection() {
    let mut p = Peers::new(&["pattern=pub-sub", "ZMQ_SUBSCRIBE=B"], 1, 1);
    p.start(1);
    p.random(1, ZmqRandom::Processing(1));
    p.deliver(1, 0, ZmqMsg::Welcome { connection: 0 });
    let reset = p.deliver(1, 0, ZmqMsg::Reset);
    assert_eq!(timers(&reset), vec![ZmqTimer::Reconnect]);
    let again = p.fire(1, ZmqTimer::Reconnect);
    assert_eq!(
        sent(&again),
        vec![
            (0, ZmqMsg::Hello { connection: 1 }),
            (0, ZmqMsg::Subscribe { prefix: "B".into() })
        ]
    );
    // A straggler of the broken connection is not read as the new one's, nor is its greeting.
    assert!(p.deliver(1, 0, message(frames(0, 1))).is_empty());
    p.deliver(1, 0, ZmqMsg::Welcome { connection: 0 });
    let still = p.fire(1, ZmqTimer::Reconnect);
    assert_eq!(sent(&still)[0], (0, ZmqMsg::Hello { connection: 1 }));
    let new = ZmqMsg::Message {
        connection: 1,
        frames: frames(0, 3),
    };
    assert_eq!(sent(&p.deliver(1, 0, new)), vec![(0, ZmqMsg::Credit(1))]);
}

#[test]
fn plain_req_is_acknowledged_when_zmq_send_returns_and_waits_for_ever() {
    let mut p = Peers::new(&["pattern=req-rep"], 1, 1);
    p.start(0);
    p.deliver(0, 1, ZmqMsg::Welcome { connection: 0 });
    p.random(0, ZmqRandom::Pace(20));
    let send = p.fire(0, ZmqTimer::Send);
    assert_eq!(
        sent(&send),
        vec![(
            1,
            ZmqMsg::Request {
                socket: 0,
                request_id: None,
                frames: frames(0, 0)
            }
        )]
    );
    assert!(
        timers(&send).is_empty(),
        "no timeout: a plain REQ waits for its reply"
    );
    assert_eq!(p.app(0).iter().last(), Some(&Op::Ack { msg: msg(0, 0) }));
    // Strict alternation: no second request before the reply.
    assert!(sent(&p.fire(0, ZmqTimer::Send)).is_empty());
}

#[test]
fn lazy_pirate_reopens_its_socket_resends_and_gives_up_after_its_retries() {
    let mut p = Peers::new(
        &[
            "pattern=req-rep",
            "client=lazy-pirate",
            "lazy-pirate.retries=2",
        ],
        1,
        1,
    );
    p.start(0);
    p.deliver(0, 1, ZmqMsg::Welcome { connection: 0 });
    p.random(0, ZmqRandom::Pace(20));
    let send = p.fire(0, ZmqTimer::Send);
    assert_eq!(timers(&send), vec![ZmqTimer::RequestTimeout]);
    assert!(
        !p.app(0).iter().any(|op| matches!(op, Op::Ack { .. })),
        "no reply yet"
    );
    // No reply in time: close the socket, open a new one, connect, resend on it.
    let timeout = p.fire(0, ZmqTimer::RequestTimeout);
    assert_eq!(sent(&timeout), vec![(1, ZmqMsg::Hello { connection: 1 })]);
    let resend = p.deliver(0, 1, ZmqMsg::Welcome { connection: 1 });
    assert_eq!(
        sent(&resend),
        vec![(
            1,
            ZmqMsg::Request {
                socket: 1,
                request_id: None,
                frames: frames(0, 0)
            }
        )]
    );
    // The old socket's reply arrives on a closed socket: ignored.
    let before = p.app(0);
    p.deliver(
        0,
        1,
        ZmqMsg::Reply {
            socket: 0,
            request_id: None,
            frames: frames(0, 0),
        },
    );
    assert!(since(&before, &p.app(0)).is_empty());
    // The second attempt times out too: abandon the request, go on with the next.
    let give_up = p.fire(0, ZmqTimer::RequestTimeout);
    assert!(timers(&give_up).contains(&ZmqTimer::Send));
    assert!(
        matches!(p.app(0).iter().last(), Some(Op::Fail { msg: m, reason }) if *m == msg(0, 0) && reason.contains("abandoning")),
        "{:?}",
        p.app(0)
    );
}

#[test]
fn rep_discards_a_reply_to_a_vanished_socket_and_dedup_answers_a_repeat_without_handling_it() {
    let mut p = Peers::new(
        &["pattern=req-rep", "client=lazy-pirate", "server.dedup=true"],
        1,
        1,
    );
    p.start(1);
    p.deliver(1, 0, ZmqMsg::Hello { connection: 0 });
    let req = p.deliver(
        1,
        0,
        ZmqMsg::Request {
            socket: 0,
            request_id: None,
            frames: frames(0, 0),
        },
    );
    assert_eq!(timers(&req), vec![ZmqTimer::Process]);
    // The client reopened its socket while the server was handling the request.
    p.deliver(1, 0, ZmqMsg::Hello { connection: 1 });
    let handled = p.fire(1, ZmqTimer::Process);
    assert!(
        sent(&handled).is_empty(),
        "the requester is gone: the reply is discarded"
    );
    assert_eq!(p.app(1).len(), 1, "handled once");
    // The resent request: answered, not handled again.
    p.deliver(
        1,
        0,
        ZmqMsg::Request {
            socket: 1,
            request_id: None,
            frames: frames(0, 0),
        },
    );
    let again = p.fire(1, ZmqTimer::Process);
    assert_eq!(
        sent(&again),
        vec![(
            0,
            ZmqMsg::Reply {
                socket: 1,
                request_id: None,
                frames: frames(0, 0)
            }
        )]
    );
    assert_eq!(p.app(1).len(), 1, "a duplicate, detected");
}

#[test]
fn multipart_messages_travel_whole_and_name_their_parts() {
    let mut p = Peers::new(&["pattern=push-pull", "frames=3"], 1, 1);
    p.start(0);
    p.random(0, ZmqRandom::Pace(20));
    p.deliver(0, 1, ZmqMsg::Hello { connection: 0 });
    let send = p.fire(0, ZmqTimer::Send);
    let parts = vec![msg(0, 0), msg(0, 1), msg(0, 2)];
    assert_eq!(
        sent(&send),
        vec![(
            1,
            message(Frames {
                parts: parts.clone(),
                topic: 'A'
            })
        )]
    );
    assert!(p.app(0).iter().any(|op| *op
        == Op::Multipart {
            parts: parts.clone()
        }));
}

#[test]
fn req_queues_to_a_server_not_yet_connected_unless_zmq_immediate() {
    // ZMQ_IMMEDIATE=0: zmq_send returns at once, round robin may pick a server that is down,
    // and the request waits in its pipe for the connection.
    let mut p = Peers::new(&["pattern=req-rep"], 1, 2);
    p.start(0);
    p.random(0, ZmqRandom::Pace(20));
    p.deliver(0, 2, ZmqMsg::Welcome { connection: 0 });
    let send = p.fire(0, ZmqTimer::Send);
    assert!(
        sent(&send).is_empty(),
        "queued for rep0 (id 1), not connected"
    );
    assert_eq!(p.app(0).iter().last(), Some(&Op::Ack { msg: msg(0, 0) }));
    let up = p.deliver(0, 1, ZmqMsg::Welcome { connection: 0 });
    assert_eq!(
        sent(&up),
        vec![(
            1,
            ZmqMsg::Request {
                socket: 0,
                request_id: None,
                frames: frames(0, 0)
            }
        )]
    );
    // ZMQ_IMMEDIATE=1: only completed connections have pipes.
    let mut p = Peers::new(&["pattern=req-rep", "ZMQ_IMMEDIATE=1"], 1, 2);
    p.start(0);
    p.random(0, ZmqRandom::Pace(20));
    let before = p.app(0);
    assert!(sent(&p.fire(0, ZmqTimer::Send)).is_empty());
    assert!(
        !since(&before, &p.app(0))
            .iter()
            .any(|op| matches!(op, Op::Ack { .. })),
        "zmq_send blocks: no connection is complete"
    );
    let up = p.deliver(0, 2, ZmqMsg::Welcome { connection: 0 });
    assert_eq!(sent(&up).len(), 1);
    assert_eq!(sent(&up)[0].0, 2, "to the connected server");
    assert_eq!(p.app(0).iter().last(), Some(&Op::Ack { msg: msg(0, 0) }));
}

/// What the Stateright Explorer shows of a peer, in ZeroMQ's terms rather than `Debug`: a PUSH
/// whose pipes are all at the high-water mark is mute and blocked, a PULL's pipe lists its
/// messages and what waits unread on the connection, a Lazy Pirate client counts its attempts.
#[test]
fn show_names_socket_types_pipes_the_mute_state_and_retries() {
    // A PUSH (0) with both PULL peers (1, 2) mute at ZMQ_SNDHWM=1.
    let mut p = Peers::new(&["pattern=push-pull", "ZMQ_SNDHWM=1", LARGE], 1, 2);
    p.start(0);
    p.random(0, ZmqRandom::Pace(20));
    p.deliver(0, 1, ZmqMsg::Hello { connection: 0 });
    p.deliver(0, 2, ZmqMsg::Hello { connection: 0 });
    for _ in 0..5 {
        p.fire(0, ZmqTimer::Send);
    }
    let push = p.show(0);
    assert!(push.starts_with("PUSH: next message 4"), "{push}");
    assert!(push.contains("zmq_send blocked: every pipe mute"), "{push}");
    assert!(
        push.contains("pipe to pull0 (connection 0): 1 queued, 1 in the kernels' buffers, mute"),
        "{push}"
    );
    assert!(!push.contains("Outgoing"), "not Debug: {push}");

    // A PULL (2) with room for one message per pipe: the second stays on the connection.
    let mut p = Peers::new(&["pattern=push-pull", "ZMQ_RCVHWM=1"], 2, 1);
    p.start(2);
    p.random(2, ZmqRandom::Processing(10));
    p.deliver(2, 0, ZmqMsg::Welcome { connection: 0 });
    p.deliver(2, 0, message(frames(0, 0)));
    p.deliver(2, 0, message(frames(0, 1)));
    let pull = p.show(2);
    assert!(
        pull.contains("from push0 (connection 0 up): 1 queued [p0:0], full (ZMQ_RCVHWM): 1 unread"),
        "{pull}"
    );
    assert!(pull.contains("handling a message"), "{pull}");

    // A Lazy Pirate client after one timeout: a new socket, one attempt left.
    let mut p = Peers::new(
        &[
            "pattern=req-rep",
            "client=lazy-pirate",
            "lazy-pirate.retries=2",
        ],
        1,
        1,
    );
    p.start(0);
    p.deliver(0, 1, ZmqMsg::Welcome { connection: 0 });
    p.random(0, ZmqRandom::Pace(20));
    p.fire(0, ZmqTimer::Send);
    p.fire(0, ZmqTimer::RequestTimeout);
    let req = p.show(0);
    assert!(req.starts_with("REQ socket 1: connected to []"), "{req}");
    assert!(
        req.contains("awaiting the reply to p0:0 (queued in the pipe to rep0; 1 attempts left)"),
        "{req}"
    );
}

/// The deliveries of message `m` a server's application recorded.
fn handled(app: &AppLog, m: MsgId) -> usize {
    app.iter()
        .filter(|op| matches!(op, Op::Deliver { msg, .. } if *msg == m))
        .count()
}

fn request(socket: u32, index: u32) -> ZmqMsg {
    ZmqMsg::Request {
        socket,
        request_id: None,
        frames: frames(0, index),
    }
}

#[test]
fn rep_keeps_the_requests_of_a_replaced_socket_handles_them_and_drops_their_replies() {
    // Two REQ peers (0, 1) and a REP (2), busy with req1's request.
    let mut p = Peers::new(&["pattern=req-rep", "client=lazy-pirate"], 2, 1);
    p.start(2);
    p.random(2, ZmqRandom::Processing(10));
    p.deliver(2, 0, ZmqMsg::Hello { connection: 0 });
    p.deliver(2, 1, ZmqMsg::Hello { connection: 0 });
    p.deliver(
        2,
        1,
        ZmqMsg::Request {
            socket: 0,
            request_id: None,
            frames: frames(1, 0),
        },
    );
    // req0's request waits in its pipe; req0 gives up on its socket and opens a new one, whose
    // connection gets a new pipe, and resends there.
    p.deliver(2, 0, request(0, 0));
    p.deliver(2, 0, ZmqMsg::Hello { connection: 1 });
    p.deliver(2, 0, request(1, 0));
    let rep = p.show(2);
    assert!(
        rep.contains("req0 (socket 1): 2 queued [p0:0 p0:0]"),
        "{rep}"
    );
    // The old pipe's request is still received and applied; its reply has no pipe to go to.
    p.fire(2, ZmqTimer::Process);
    assert_eq!(
        handled(&p.app(2), msg(0, 0)),
        1,
        "the terminated pipe is read"
    );
    let dropped = p.fire(2, ZmqTimer::Process);
    assert!(sent(&dropped).is_empty(), "{dropped:?}");
    // The resent one: applied again (no server.dedup), and answered on the new socket.
    assert_eq!(handled(&p.app(2), msg(0, 0)), 2);
    let answered = p.fire(2, ZmqTimer::Process);
    assert_eq!(
        sent(&answered),
        vec![(
            0,
            ZmqMsg::Reply {
                socket: 1,
                request_id: None,
                frames: frames(0, 0)
            }
        )]
    );
    // A broken connection leaves its pipe's requests too.
    p.deliver(2, 1, ZmqMsg::Hello { connection: 0 });
    p.deliver(
        2,
        1,
        ZmqMsg::Request {
            socket: 0,
            request_id: None,
            frames: frames(1, 1),
        },
    );
    p.deliver(2, 1, ZmqMsg::Reset);
    assert_eq!(handled(&p.app(2), msg(1, 1)), 1, "received after the reset");
    assert!(sent(&p.fire(2, ZmqTimer::Process)).is_empty());
}

#[test]
fn rep_applies_a_request_before_it_replies_so_a_crash_in_between_makes_a_retry_a_duplicate() {
    let mut p = Peers::new(&["pattern=req-rep", "client=lazy-pirate"], 1, 1);
    p.start(1);
    p.random(1, ZmqRandom::Processing(40));
    p.deliver(1, 0, ZmqMsg::Hello { connection: 0 });
    let received = p.deliver(1, 0, request(0, 0));
    assert_eq!(handled(&p.app(1), msg(0, 0)), 1, "applied on receipt");
    assert!(sent(&received).is_empty(), "the reply comes after the work");
    assert_eq!(timers(&received), vec![ZmqTimer::Process]);
    assert!(p
        .show(1)
        .contains("handled p0:0 from req0 (socket 0), reply owed"));
    // The server crashes before it replies; the client times out and resends on a new socket.
    let app = p.app(1);
    p.restart(1, Some(app));
    p.random(1, ZmqRandom::Processing(40));
    p.deliver(1, 0, ZmqMsg::Hello { connection: 1 });
    p.deliver(1, 0, request(1, 0));
    assert_eq!(handled(&p.app(1), msg(0, 0)), 2, "the duplicate window");
}

#[test]
fn reconnection_waits_zmq_reconnect_ivl_plus_a_random_jitter_below_it() {
    let mut p = Peers::new(&["pattern=push-pull", "ZMQ_RECONNECT_IVL=250"], 1, 1);
    p.start(1);
    p.deliver(1, 0, ZmqMsg::Welcome { connection: 0 });
    let reset = p.deliver(1, 0, ZmqMsg::Reset);
    let ranges: Vec<_> = reset
        .iter()
        .filter_map(|c| match c {
            Command::SetTimer(ZmqTimer::Reconnect, range) => Some(range.clone()),
            _ => None,
        })
        .collect();
    let ms = std::time::Duration::from_millis;
    assert_eq!(ranges, vec![ms(250)..ms(500)]);
}

#[test]
fn zmq_immediate_drops_the_request_with_its_connection_and_sends_nothing_after_the_reconnect() {
    for immediate in ["0", "1"] {
        let sets = [
            "pattern=req-rep".to_string(),
            format!("ZMQ_IMMEDIATE={immediate}"),
        ];
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        let mut p = Peers::new(&sets, 1, 1);
        p.start(0);
        p.random(0, ZmqRandom::Pace(20));
        p.deliver(0, 1, ZmqMsg::Welcome { connection: 0 });
        assert_eq!(sent(&p.fire(0, ZmqTimer::Send)), vec![(1, request(0, 0))]);
        p.deliver(0, 1, ZmqMsg::Reset);
        let again = p.fire(0, ZmqTimer::Reconnect);
        assert_eq!(sent(&again), vec![(1, ZmqMsg::Hello { connection: 0 })]);
        let up = p.deliver(0, 1, ZmqMsg::Welcome { connection: 0 });
        assert!(
            sent(&up).is_empty(),
            "ZMQ_IMMEDIATE={immediate}: the written request went with the connection: {up:?}"
        );
    }
}

/// A Lazy Pirate client (0) with `sets`, its servers (`1..=servers`) connected, that sent its
/// first request.
fn lazy_pirate(sets: &[&str], servers: u32) -> (Peers, Vec<Cmd>) {
    let sets: Vec<&str> = ["pattern=req-rep", "client=lazy-pirate"]
        .into_iter()
        .chain(sets.iter().copied())
        .collect();
    let mut p = Peers::new(&sets, 1, servers);
    p.start(0);
    for server in 1..=servers as usize {
        p.deliver(0, server, ZmqMsg::Welcome { connection: 0 });
    }
    p.random(0, ZmqRandom::Pace(20));
    let send = p.fire(0, ZmqTimer::Send);
    (p, send)
}

fn reply(request_id: Option<u32>, index: u32) -> ZmqMsg {
    ZmqMsg::Reply {
        socket: 0,
        request_id,
        frames: frames(0, index),
    }
}

fn acks(app: &AppLog) -> Vec<MsgId> {
    app.iter()
        .filter_map(|op| match op {
            Op::Ack { msg } => Some(*msg),
            _ => None,
        })
        .collect()
}

#[test]
fn relaxed_req_sends_a_new_request_while_one_is_outstanding_and_takes_replies_from_its_pipe_only() {
    // Strict (the default): a timeout closes the socket and the resend waits for the new one.
    let (mut strict, _) = lazy_pirate(&[], 2);
    let timeout = strict.fire(0, ZmqTimer::RequestTimeout);
    assert_eq!(
        sent(&timeout),
        vec![
            (1, ZmqMsg::Hello { connection: 1 }),
            (2, ZmqMsg::Hello { connection: 1 })
        ]
    );
    // ZMQ_REQ_RELAXED=1: the same socket sends again at once, to the next pipe in round robin,
    // with the first request still unanswered.
    let (mut p, send) = lazy_pirate(&["ZMQ_REQ_RELAXED=1"], 2);
    assert_eq!(sent(&send), vec![(1, request(0, 0))]);
    let timeout = p.fire(0, ZmqTimer::RequestTimeout);
    assert_eq!(sent(&timeout), vec![(2, request(0, 0))]);
    assert_eq!(timers(&timeout), vec![ZmqTimer::RequestTimeout]);
    // rep0's late reply comes through another pipe than the last request's: the socket skips
    // it, but zmq_poll woke for it, and lpclient's zstr_recv now blocks without a timeout.
    let stale = p.deliver(0, 1, reply(None, 0));
    assert!(acks(&p.app(0)).is_empty());
    assert!(
        stale
            .iter()
            .any(|c| matches!(c, Command::CancelTimer(ZmqTimer::RequestTimeout))),
        "{stale:?}"
    );
    assert!(p.show(0).contains("blocked in zmq_recv"), "{}", p.show(0));
    // The last request's pipe answers.
    p.deliver(0, 2, reply(None, 0));
    assert_eq!(acks(&p.app(0)), vec![msg(0, 0)]);
}

#[test]
fn relaxed_req_leaves_an_earlier_attempt_in_its_pipe_and_it_goes_out_after_the_connection() {
    for (relaxed, out) in [("0", 1), ("1", 2)] {
        let setting = format!("ZMQ_REQ_RELAXED={relaxed}");
        let mut p = Peers::new(&["pattern=req-rep", "client=lazy-pirate", &setting], 1, 1);
        p.start(0);
        p.random(0, ZmqRandom::Pace(20));
        // The server is not up yet: the request waits in the pipe (ZMQ_IMMEDIATE=0).
        assert!(sent(&p.fire(0, ZmqTimer::Send)).is_empty());
        p.fire(0, ZmqTimer::RequestTimeout);
        let socket = if relaxed == "1" { 0 } else { 1 };
        let up = p.deliver(0, 1, ZmqMsg::Welcome { connection: socket });
        let requests: Vec<_> = sent(&up)
            .into_iter()
            .filter(|(_, m)| matches!(m, ZmqMsg::Request { .. }))
            .collect();
        // Strict: the first attempt went with its socket. Relaxed: both attempts, in order.
        assert_eq!(requests, vec![(1, request(socket, 0)); out], "{setting}");
    }
}

#[test]
fn a_late_reply_to_an_abandoned_request_answers_the_next_unless_correlated_or_checked() {
    let base = [
        "ZMQ_REQ_RELAXED=1",
        "lazy-pirate.retries=1",
        "lazy-pirate.check-reply=false",
    ];
    for correlate in [false, true] {
        let mut sets = base.to_vec();
        if correlate {
            sets.push("ZMQ_REQ_CORRELATE=1");
        }
        let (mut p, send) = lazy_pirate(&sets, 1);
        let id = |n: u32| correlate.then_some(n);
        assert_eq!(
            sent(&send),
            vec![(
                1,
                ZmqMsg::Request {
                    socket: 0,
                    request_id: id(1),
                    frames: frames(0, 0)
                }
            )]
        );
        // No reply in time: the request is abandoned, the next goes out on the same socket.
        p.fire(0, ZmqTimer::RequestTimeout);
        let next = p.fire(0, ZmqTimer::Send);
        assert_eq!(
            sent(&next),
            vec![(
                1,
                ZmqMsg::Request {
                    socket: 0,
                    request_id: id(2),
                    frames: frames(0, 1)
                }
            )]
        );
        // The server answers the abandoned request at last.
        p.deliver(0, 1, reply(id(1), 0));
        if correlate {
            // Its request id is not the last request's: the socket drops it.
            assert!(acks(&p.app(0)).is_empty());
            p.deliver(0, 1, reply(id(2), 1));
        }
        // Without ZMQ_REQ_CORRELATE the late reply acknowledges p0:1, which the server may
        // never have handled.
        assert_eq!(acks(&p.app(0)), vec![msg(0, 1)], "correlate {correlate}");
    }
    // lpclient's check: the reply is not the request's sequence number, "malformed reply from
    // server"; the client polls again for a whole REQUEST_TIMEOUT.
    let (mut p, _) = lazy_pirate(&base[..2], 1);
    p.fire(0, ZmqTimer::RequestTimeout);
    p.fire(0, ZmqTimer::Send);
    let malformed = p.deliver(0, 1, reply(None, 0));
    assert!(acks(&p.app(0)).is_empty());
    assert_eq!(timers(&malformed), vec![ZmqTimer::RequestTimeout]);
    p.deliver(0, 1, reply(None, 1));
    assert_eq!(acks(&p.app(0)), vec![msg(0, 1)]);
}

#[test]
fn rep_returns_the_request_id_frame_with_its_reply() {
    let mut p = Peers::new(&["pattern=req-rep", "client=lazy-pirate"], 1, 1);
    p.start(1);
    p.deliver(1, 0, ZmqMsg::Hello { connection: 0 });
    p.deliver(
        1,
        0,
        ZmqMsg::Request {
            socket: 0,
            request_id: Some(7),
            frames: frames(0, 0),
        },
    );
    assert_eq!(
        sent(&p.fire(1, ZmqTimer::Process)),
        vec![(0, reply(Some(7), 0))]
    );
}

/// A message on connection `connection`.
fn message_on(connection: u32, frames: Frames) -> ZmqMsg {
    ZmqMsg::Message { connection, frames }
}

/// A PUSH (0) that connects to two PULLs (1, 2), pacing its sends; both connections up
/// unless `ZMQ_IMMEDIATE=1` is among `sets`, in which case none is.
fn connecting_push(sets: &[&str]) -> Peers {
    let sets: Vec<&str> = ["pattern=push-pull", "bind=pull"]
        .into_iter()
        .chain(sets.iter().copied())
        .collect();
    let mut p = Peers::new(&sets, 1, 2);
    let start = p.start(0);
    assert_eq!(
        sent(&start),
        vec![
            (1, ZmqMsg::Hello { connection: 0 }),
            (2, ZmqMsg::Hello { connection: 0 })
        ],
        "a connecting PUSH dials every PULL"
    );
    assert!(timers(&start).contains(&ZmqTimer::Reconnect));
    p.random(0, ZmqRandom::Pace(20));
    p
}

#[test]
fn a_connecting_push_queues_to_a_departed_pull_and_sends_it_after_the_reconnect() {
    let mut p = connecting_push(&[]);
    // ZMQ_IMMEDIATE=0: the pipes exist from zmq_connect on. Before any connection is up
    // zmq_send returns: the first message waits in pull0's pipe.
    let queued = p.fire(0, ZmqTimer::Send);
    assert!(sent(&queued).is_empty(), "{queued:?}");
    assert_eq!(p.app(0).iter().last(), Some(&Op::Ack { msg: msg(0, 0) }));
    // pull0's connection comes up: what waited goes out.
    let up = p.deliver(0, 1, ZmqMsg::Welcome { connection: 0 });
    assert_eq!(sent(&up), vec![(1, message(frames(0, 0)))]);
    p.deliver(0, 2, ZmqMsg::Welcome { connection: 0 });
    assert_eq!(
        sent(&p.fire(0, ZmqTimer::Send)),
        vec![(2, message(frames(0, 1)))]
    );
    // pull1 (id 2) crashes: its kernel resets the connection. The PUSH reconnects and keeps
    // the pipe, and round robin goes on putting every other message in it.
    let reset = p.deliver(0, 2, ZmqMsg::Reset);
    assert_eq!(timers(&reset), vec![ZmqTimer::Reconnect]);
    let mut to_pull0 = Vec::new();
    for _ in 2..6 {
        for (dst, m) in sent(&p.fire(0, ZmqTimer::Send)) {
            assert_eq!(dst, 1, "nothing goes to the departed PULL's connection");
            to_pull0.push(m);
        }
    }
    assert_eq!(
        to_pull0,
        vec![message(frames(0, 2)), message(frames(0, 4))],
        "kept for pull1, not redistributed"
    );
    let show = p.show(0);
    assert!(
        show.contains("pipe to pull1 (connection 0): 2 queued, 0 in the kernels' buffers, waiting for its connection"),
        "{show}"
    );
    // The PUSH dials again on a new connection; once it is up, the pipe's messages go out.
    let dial = p.fire(0, ZmqTimer::Reconnect);
    assert_eq!(sent(&dial), vec![(2, ZmqMsg::Hello { connection: 1 })]);
    // A straggler answer to the old connection opens nothing.
    assert!(sent(&p.deliver(0, 2, ZmqMsg::Welcome { connection: 0 })).is_empty());
    let back = p.deliver(0, 2, ZmqMsg::Welcome { connection: 1 });
    assert_eq!(
        sent(&back),
        vec![
            (2, message_on(1, frames(0, 3))),
            (2, message_on(1, frames(0, 5)))
        ]
    );
    // Nothing was dropped: the messages written before the reset are lost with the connection
    // (and the PULL that crashed), not noted by the PUSH.
    assert!(!p.app(0).iter().any(|op| matches!(op, Op::Discard { .. })));
}

#[test]
fn a_connecting_push_with_zmq_immediate_queues_only_to_connected_pulls_and_drops_a_broken_ones_pipe(
) {
    // Large messages: one streams through the kernels' buffers, the next waits in the pipe.
    let mut p = connecting_push(&["ZMQ_IMMEDIATE=1", LARGE]);
    // No connection complete: no pipe, and zmq_send blocks.
    let blocked = p.fire(0, ZmqTimer::Send);
    assert!(sent(&blocked).is_empty() && timers(&blocked).is_empty());
    assert!(!p.app(0).iter().any(|op| matches!(op, Op::Ack { .. })));
    let show = p.show(0);
    assert!(
        show.contains("zmq_send blocked: no peer connected"),
        "{show}"
    );
    // pull0's connection completes: its pipe is created and the blocked message goes out.
    let up = p.deliver(0, 1, ZmqMsg::Welcome { connection: 0 });
    assert_eq!(sent(&up), vec![(1, message(frames(0, 0)))]);
    p.deliver(0, 2, ZmqMsg::Welcome { connection: 0 });
    assert_eq!(
        sent(&p.fire(0, ZmqTimer::Send)),
        vec![(2, message(frames(0, 1)))]
    );
    // Both connections are full; the next two wait in the pipes.
    for _ in 2..4 {
        assert!(sent(&p.fire(0, ZmqTimer::Send)).is_empty());
    }
    // pull1's connection breaks: the session terminates its pipe with p0:3 in it.
    let before = p.app(0);
    let reset = p.deliver(0, 2, ZmqMsg::Reset);
    assert_eq!(timers(&reset), vec![ZmqTimer::Reconnect]);
    let dropped = since(&before, &p.app(0));
    assert!(
        matches!(&dropped[..], [Op::Discard { msg: m, reason }]
            if *m == msg(0, 3) && reason.contains("ZMQ_IMMEDIATE=1: the connection to pull1 broke")),
        "{dropped:?}"
    );
    // Round robin knows only pull0 now: the next message goes to its pipe.
    p.fire(0, ZmqTimer::Send);
    let show = p.show(0);
    assert!(
        show.contains("pipe to pull0 (connection 0): 2 queued") && !show.contains("pull1"),
        "{show}"
    );
    // After the reconnect pull1 gets a new, empty pipe: nothing of before goes out.
    p.fire(0, ZmqTimer::Reconnect);
    let back = p.deliver(0, 2, ZmqMsg::Welcome { connection: 1 });
    assert!(sent(&back).is_empty(), "{back:?}");
}

#[test]
fn a_binding_pull_accepts_each_connection_keeps_a_broken_ones_messages_and_never_dials() {
    // Two PUSHes (0, 1) connect to one PULL (2).
    let mut p = Peers::new(&["pattern=push-pull", "bind=pull", "ZMQ_RCVHWM=1"], 2, 1);
    let start = p.start(2);
    assert!(sent(&start).is_empty(), "a binding PULL dials nobody");
    p.random(2, ZmqRandom::Processing(10));
    // Nothing is read before a connection's greeting.
    assert!(sent(&p.deliver(2, 0, message(frames(0, 0)))).is_empty());
    let hello = p.deliver(2, 0, ZmqMsg::Hello { connection: 0 });
    assert_eq!(sent(&hello), vec![(0, ZmqMsg::Welcome { connection: 0 })]);
    // The same greeting again (the PUSH dialled again before the answer) changes nothing.
    let again = p.deliver(2, 0, ZmqMsg::Hello { connection: 0 });
    assert_eq!(sent(&again), vec![(0, ZmqMsg::Welcome { connection: 0 })]);
    assert_eq!(
        sent(&p.deliver(2, 0, message(frames(0, 1)))),
        vec![(0, ZmqMsg::Credit(1))]
    );
    // The next waits on the connection (ZMQ_RCVHWM=1).
    assert!(sent(&p.deliver(2, 0, message(frames(0, 2)))).is_empty());
    // The connection breaks: the unread message is gone with it, the pipe's is still read,
    // and the PULL waits for the PUSH to connect again.
    let reset = p.deliver(2, 0, ZmqMsg::Reset);
    assert!(
        sent(&reset).is_empty() && !timers(&reset).contains(&ZmqTimer::Reconnect),
        "{reset:?}"
    );
    assert!(sent(&p.deliver(2, 0, message(frames(0, 3)))).is_empty());
    p.deliver(2, 0, ZmqMsg::Hello { connection: 1 });
    p.deliver(2, 0, message_on(1, frames(0, 4)));
    let mut got = Vec::new();
    for _ in 0..3 {
        let before = p.app(2);
        p.fire(2, ZmqTimer::Process);
        for op in since(&before, &p.app(2)) {
            if let Op::Deliver { msg, session, .. } = op {
                got.push((msg, session));
            }
        }
    }
    assert_eq!(got, vec![(msg(0, 1), 0), (msg(0, 4), 1)], "{got:?}");
}

#[test]
fn dealer_round_robins_over_its_routers_and_gets_each_reply_over_the_pipe_it_came_from() {
    let mut p = Peers::new(&["pattern=dealer-router"], 1, 2);
    let start = p.start(0);
    assert_eq!(
        sent(&start),
        vec![(1, hello(0, None)), (2, hello(0, None))],
        "zmq_connect to every ROUTER"
    );
    for router in [1, 2] {
        p.start(router);
        p.random(router, ZmqRandom::Processing(10));
    }
    p.random(0, ZmqRandom::Pace(20));
    // ZMQ_IMMEDIATE=0: a pipe to each ROUTER before any connection; round robin fills both,
    // and zmq_send returns.
    for i in 0..2 {
        assert!(sent(&p.fire(0, ZmqTimer::Send)).is_empty());
        assert_eq!(p.app(0).iter().last(), Some(&Op::Ack { msg: msg(0, i) }));
    }
    let welcome = p.deliver(1, 0, hello(0, None));
    assert_eq!(sent(&welcome), vec![(0, ZmqMsg::Welcome { connection: 0 })]);
    let out = p.deliver(0, 1, ZmqMsg::Welcome { connection: 0 });
    assert_eq!(sent(&out), vec![(1, message(frames(0, 0)))]);
    // router0 takes the request into its pipe (credit), applies it, and replies after its
    // handling time to the routing id it came with.
    let received = p.deliver(1, 0, message(frames(0, 0)));
    assert_eq!(sent(&received), vec![(0, ZmqMsg::Credit(1))]);
    assert!(timers(&received).contains(&ZmqTimer::Process));
    assert!(matches!(
        p.app(1).iter().last(),
        Some(Op::Deliver { group: 0, .. })
    ));
    let reply = p.fire(1, ZmqTimer::Process);
    assert_eq!(sent(&reply), vec![(0, message(frames(0, 0)))]);
    // The DEALER's application reads the reply at once: a delivery in the clients' group.
    let before = p.app(0);
    let read = p.deliver(0, 1, message(frames(0, 0)));
    assert_eq!(sent(&read), vec![(1, ZmqMsg::Credit(1))]);
    let ops = since(&before, &p.app(0));
    assert!(
        matches!(ops[..], [Op::Deliver { msg: m, group: 1, .. }] if m == msg(0, 0)),
        "{ops:?}"
    );
    // The second request waited in the pipe to router1 and goes out once it answers.
    p.deliver(2, 0, hello(0, None));
    let out = p.deliver(0, 2, ZmqMsg::Welcome { connection: 0 });
    assert_eq!(sent(&out), vec![(2, message(frames(0, 1)))]);
    assert!(p.show(0).starts_with("DEALER"), "{}", p.show(0));
    assert!(p.show(1).starts_with("ROUTER"), "{}", p.show(1));
}

/// A DEALER's greeting.
fn hello(connection: u32, routing_id: Option<u32>) -> ZmqMsg {
    ZmqMsg::Ready {
        connection,
        routing_id,
    }
}

#[test]
fn a_dealer_with_zmq_routing_id_greets_every_router_with_it_on_every_connection() {
    let mut p = Peers::new(&["pattern=dealer-router", "ZMQ_ROUTING_ID=client"], 2, 1);
    for dealer in [0, 1] {
        let start = p.start(dealer);
        assert_eq!(sent(&start), vec![(2, hello(0, Some(dealer as u32)))]);
    }
    p.start(2);
    p.deliver(2, 1, hello(0, Some(1)));
    p.deliver(1, 2, ZmqMsg::Welcome { connection: 0 });
    // The connection breaks: the next one carries the same routing id.
    let reset = p.deliver(1, 2, ZmqMsg::Reset);
    assert!(timers(&reset).contains(&ZmqTimer::Reconnect));
    let again = p.fire(1, ZmqTimer::Reconnect);
    assert_eq!(sent(&again), vec![(2, hello(1, Some(1)))]);
    assert!(p.show(2).contains("routing id dealer1"), "{}", p.show(2));
}

#[test]
fn zmq_conflate_on_a_dealer_keeps_one_request_per_pipe_and_never_blocks() {
    // Marks of 1 that ZMQ_CONFLATE=1 lifts from the DEALER's pipes: without it, the second
    // zmq_send to a ROUTER not yet connected blocks.
    for conflate in [false, true] {
        let mut sets = vec!["pattern=dealer-router", "ZMQ_SNDHWM=1"];
        if conflate {
            sets.push("ZMQ_CONFLATE=1");
        }
        let mut p = Peers::new(&sets, 1, 1);
        p.start(0);
        p.start(1);
        p.random(0, ZmqRandom::Pace(20));
        for _ in 0..3 {
            p.fire(0, ZmqTimer::Send);
        }
        let acked: Vec<MsgId> = p
            .app(0)
            .iter()
            .filter_map(|op| match op {
                Op::Ack { msg } => Some(*msg),
                _ => None,
            })
            .collect();
        let replaced: Vec<MsgId> = p
            .app(0)
            .iter()
            .filter_map(|op| match op {
                Op::Discard { msg, reason } if reason.contains("ZMQ_CONFLATE") => Some(*msg),
                _ => None,
            })
            .collect();
        if conflate {
            assert_eq!(acked, vec![msg(0, 0), msg(0, 1), msg(0, 2)], "never blocks");
            assert_eq!(replaced, vec![msg(0, 0), msg(0, 1)]);
            // Once connected, only the last request goes out.
            p.deliver(1, 0, hello(0, None));
            let out = p.deliver(0, 1, ZmqMsg::Welcome { connection: 0 });
            assert_eq!(sent(&out), vec![(1, message(frames(0, 2)))]);
        } else {
            assert_eq!(acked, vec![msg(0, 0)], "blocked at ZMQ_SNDHWM");
            assert!(replaced.is_empty());
        }
    }
}
