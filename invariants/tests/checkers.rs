//! Tests of the invariant checkers: hand-built histories that violate (or must not violate) each
//! invariant, and proptest properties over generated "perfect" histories and mutations of them.

use mqcheck_invariants::{
    at_least_once, at_most_once, check, no_unexpected, ordering, Event, GroupId, History,
    Invariant, Kind, MsgId, Op, OrderingPromise, TxnOutcome, Violation,
};
use proptest::prelude::*;
use proptest::sample::Index;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The strictest promise, which the tests below judge by unless they name another: every send,
/// every delivery, compared across a group.
const EVERY: OrderingPromise = OrderingPromise {
    acknowledged_only: false,
    excludes_redelivered: false,
    per_consumer_session: false,
};

const ALL: [Invariant; 4] = [
    Invariant::AtLeastOnce,
    Invariant::AtMostOnce,
    Invariant::Ordering,
    Invariant::NoUnexpected,
];

fn m(producer: u32, seq: u32) -> MsgId {
    MsgId { producer, seq }
}

/// One delivery with defaults (consumer 0, scope 0, no position, session 0, no flag), adjusted
/// with the builder methods below.
#[derive(Clone, Copy)]
struct Dv {
    msg: MsgId,
    group: GroupId,
    consumer: u32,
    scope: u32,
    position: Option<u64>,
    session: u64,
    redelivered: Option<bool>,
}

fn dv(msg: MsgId, group: GroupId) -> Dv {
    Dv {
        msg,
        group,
        consumer: 0,
        scope: 0,
        position: None,
        session: 0,
        redelivered: None,
    }
}

impl Dv {
    fn consumer(mut self, c: u32) -> Self {
        self.consumer = c;
        self
    }
    fn scope(mut self, s: u32) -> Self {
        self.scope = s;
        self
    }
    fn pos(mut self, p: u64) -> Self {
        self.position = Some(p);
        self
    }
    fn session(mut self, s: u64) -> Self {
        self.session = s;
        self
    }
    fn redelivered(mut self, r: bool) -> Self {
        self.redelivered = Some(r);
        self
    }
    fn op(self) -> Op {
        Op::Deliver {
            msg: self.msg,
            group: self.group,
            consumer: self.consumer,
            scope: self.scope,
            position: self.position,
            session: self.session,
            redelivered: self.redelivered,
        }
    }
}

/// Builds a history; each event is 1 ms after the previous unless `at` sets the clock.
#[derive(Default)]
struct B {
    h: History,
    now: u64,
}

impl B {
    fn new() -> Self {
        Self::default()
    }
    fn at(mut self, ms: u64) -> Self {
        self.now = ms;
        self
    }
    fn op(mut self, op: Op) -> Self {
        self.h.push(self.now, "client", op);
        self.now += 1;
        self
    }
    fn send(self, msg: MsgId, scope: u32, audience: &[GroupId]) -> Self {
        self.op(Op::Send {
            msg,
            scope,
            audience: audience.to_vec(),
            key: None,
        })
    }
    fn ack(self, msg: MsgId) -> Self {
        self.op(Op::Ack { msg })
    }
    fn fail(self, msg: MsgId) -> Self {
        self.op(Op::Fail {
            msg,
            reason: "timeout".into(),
        })
    }
    /// Send and ack.
    fn sent(self, msg: MsgId, scope: u32, audience: &[GroupId]) -> Self {
        self.send(msg, scope, audience).ack(msg)
    }
    fn deliver(self, d: Dv) -> Self {
        self.op(d.op())
    }
    fn commit(self, group: GroupId, consumer: u32, scope: u32, position: u64) -> Self {
        self.op(Op::Commit {
            group,
            consumer,
            scope,
            position,
        })
    }
    fn build(self) -> History {
        self.h
    }
}

/// Every violation of every invariant, in `ALL` order.
fn all_violations(h: &History) -> Vec<Violation> {
    ALL.iter().flat_map(|&i| check(i, h, &EVERY)).collect()
}

fn of_kind(vs: &[Violation], kind: Kind) -> Vec<&Violation> {
    vs.iter().filter(|v| v.kind == kind).collect()
}

/// Asserts the violation's invariant, kind and messages, and that its explanation names every
/// message it lists.
#[track_caller]
fn assert_violation(v: &Violation, invariant: Invariant, kind: Kind, msgs: &[MsgId]) {
    assert_eq!(v.invariant, invariant, "{v:?}");
    assert_eq!(v.kind, kind, "{v:?}");
    assert_eq!(v.msgs, msgs, "{v:?}");
    for msg in msgs {
        assert!(
            v.explanation.contains(&msg.to_string()),
            "explanation does not name {msg}: {}",
            v.explanation
        );
    }
}

#[track_caller]
fn assert_mentions(v: &Violation, needle: &str) {
    assert!(
        v.explanation.contains(needle),
        "explanation lacks {needle:?}: {}",
        v.explanation
    );
}

#[track_caller]
fn assert_clean(h: &History) {
    let vs = all_violations(h);
    assert!(vs.is_empty(), "expected no violations, got {vs:#?}");
}

// ---------------------------------------------------------------------------------------------
// at-least-once
// ---------------------------------------------------------------------------------------------

#[test]
fn acked_but_never_delivered_is_lost() {
    let h = B::new()
        .send(m(0, 3), 0, &[1])
        .at(1234)
        .ack(m(0, 3))
        .build();
    let vs = at_least_once(&h);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(&vs[0], Invariant::AtLeastOnce, Kind::Lost, &[m(0, 3)]);
    assert_mentions(&vs[0], "p0:3");
    assert_mentions(&vs[0], "group 1");
    assert_mentions(&vs[0], "1.234 s");
    assert!(!vs[0].explanation.contains("other groups did"), "{vs:?}");
    // Only at-least-once complains.
    assert_eq!(all_violations(&h), vs);
}

#[test]
fn lost_explanation_names_the_discard_reason_and_a_discard_is_no_delivery() {
    let h = B::new()
        .sent(m(0, 0), 0, &[1])
        .op(Op::Discard {
            msg: m(0, 0),
            reason: "ZMQ_SNDHWM reached for c0".into(),
        })
        .sent(m(0, 1), 0, &[1])
        .deliver(dv(m(0, 1), 1).pos(0))
        .build();
    let vs = at_least_once(&h);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(&vs[0], Invariant::AtLeastOnce, Kind::Lost, &[m(0, 0)]);
    assert_mentions(&vs[0], "discarded: ZMQ_SNDHWM reached for c0");
    assert!(!h.settled(), "a discarded message is not delivered");
}

#[test]
fn a_message_the_broker_dead_lettered_is_dead_lettered_not_lost() {
    let h = B::new()
        .sent(m(0, 0), 0, &[1])
        .deliver(dv(m(0, 0), 1).pos(0))
        .sent(m(0, 1), 0, &[1])
        .deliver(dv(m(0, 1), 1).pos(1))
        .op(Op::DeadLetter {
            msg: m(0, 1),
            reason: "its x-delivery-count passed delivery-limit".into(),
        })
        .sent(m(0, 2), 0, &[1])
        .op(Op::DeadLetter {
            msg: m(0, 2),
            reason: "redelivery 7 exceeded maximumRedeliveries=6".into(),
        })
        .sent(m(0, 3), 0, &[1])
        .build();
    let vs = at_least_once(&h);
    // p0:1 reached the application before it was dead-lettered: delivered, so not missing.
    // p0:2 never did; p0:3 was simply never delivered, with no dead-letter to explain it.
    assert_eq!(vs.len(), 2, "{vs:#?}");
    assert_violation(
        &vs[0],
        Invariant::AtLeastOnce,
        Kind::DeadLettered,
        &[m(0, 2)],
    );
    assert_mentions(
        &vs[0],
        "dead-lettered: redelivery 7 exceeded maximumRedeliveries=6",
    );
    assert_violation(&vs[1], Invariant::AtLeastOnce, Kind::Lost, &[m(0, 3)]);
    assert!(!vs[1].explanation.contains("dead-lettered"), "{vs:?}");
    assert_eq!(Kind::DeadLettered.name(), "dead-lettered");
    assert!(!h.settled(), "a dead-lettered message is not delivered");
}

#[test]
fn failed_or_unacked_sends_that_are_not_delivered_are_not_lost() {
    let h = B::new()
        .send(m(0, 0), 0, &[1])
        .fail(m(0, 0))
        .send(m(0, 1), 0, &[1, 2])
        // p0:1 never acknowledged nor failed: in doubt.
        .build();
    assert!(at_least_once(&h).is_empty());
    assert_clean(&h);
}

#[test]
fn failed_send_that_is_delivered_anyway_is_fine() {
    // A definite failure may still have been stored: delivering it is neither lost nor unexpected.
    let h = B::new()
        .send(m(0, 0), 0, &[1])
        .fail(m(0, 0))
        .deliver(dv(m(0, 0), 1).pos(0))
        .build();
    assert_clean(&h);
}

#[test]
fn delivered_acked_message_is_not_lost() {
    let h = B::new()
        .sent(m(0, 0), 0, &[1, 2])
        .sent(m(1, 0), 0, &[1])
        .deliver(dv(m(0, 0), 1).pos(0))
        .deliver(dv(m(0, 0), 2).pos(0))
        .deliver(dv(m(1, 0), 1).pos(1))
        .commit(1, 0, 0, 1)
        .build();
    assert!(at_least_once(&h).is_empty());
    assert_clean(&h);
}

#[test]
fn delivered_before_ack_is_not_lost() {
    // The harness may see the delivery before the producer's ack.
    let h = B::new()
        .send(m(0, 0), 0, &[1])
        .deliver(dv(m(0, 0), 1))
        .ack(m(0, 0))
        .build();
    assert_clean(&h);
}

#[test]
fn lost_for_the_missing_group_only() {
    let h = B::new()
        .sent(m(0, 7), 0, &[1, 2])
        .deliver(dv(m(0, 7), 1).pos(0))
        .build();
    let vs = at_least_once(&h);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(&vs[0], Invariant::AtLeastOnce, Kind::Lost, &[m(0, 7)]);
    assert_mentions(&vs[0], "group 2");
    assert!(!vs[0].explanation.contains("group 1"), "{}", vs[0]);
    assert_mentions(&vs[0], "(other groups did)");
}

#[test]
fn lost_for_every_group_lists_them_all_in_one_violation() {
    let h = B::new().sent(m(2, 0), 0, &[1, 2]).build();
    let vs = at_least_once(&h);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(&vs[0], Invariant::AtLeastOnce, Kind::Lost, &[m(2, 0)]);
    assert_mentions(&vs[0], "group 1, group 2");
    assert!(!vs[0].explanation.contains("other groups did"), "{}", vs[0]);
}

#[test]
fn delivery_to_a_group_outside_the_audience_does_not_count() {
    let h = B::new()
        .sent(m(0, 0), 0, &[1])
        .deliver(dv(m(0, 0), 2))
        .build();
    let vs = at_least_once(&h);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(&vs[0], Invariant::AtLeastOnce, Kind::Lost, &[m(0, 0)]);
    assert_mentions(&vs[0], "group 1");
}

#[test]
fn acked_message_with_empty_audience_is_not_lost() {
    // E.g. a ZeroMQ publisher with no subscribers: nobody was owed the message.
    let h = B::new().sent(m(0, 0), 0, &[]).build();
    assert!(at_least_once(&h).is_empty());
}

#[test]
fn lost_messages_are_reported_in_message_order_and_once_each() {
    let h = B::new()
        .sent(m(1, 0), 0, &[1])
        .sent(m(0, 5), 0, &[1])
        .ack(m(0, 5)) // a second ack changes nothing
        .sent(m(0, 2), 0, &[1])
        .deliver(dv(m(0, 2), 1))
        .build();
    let vs = at_least_once(&h);
    assert_eq!(vs.len(), 2, "{vs:#?}");
    assert_violation(&vs[0], Invariant::AtLeastOnce, Kind::Lost, &[m(0, 5)]);
    assert_violation(&vs[1], Invariant::AtLeastOnce, Kind::Lost, &[m(1, 0)]);
}

#[test]
fn lost_explanation_uses_the_first_ack_time() {
    let h = B::new()
        .send(m(0, 0), 0, &[1])
        .at(2_005)
        .ack(m(0, 0))
        .at(9_000)
        .ack(m(0, 0))
        .build();
    let vs = at_least_once(&h);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_mentions(&vs[0], "2.005 s");
}

// ---------------------------------------------------------------------------------------------
// at-most-once
// ---------------------------------------------------------------------------------------------

#[test]
fn duplicate_with_two_positions_is_stored_more_than_once() {
    let h = B::new()
        .sent(m(0, 3), 0, &[1])
        .deliver(dv(m(0, 3), 1).pos(4))
        .deliver(dv(m(0, 3), 1).pos(7).consumer(2))
        .build();
    let vs = at_most_once(&h);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(&vs[0], Invariant::AtMostOnce, Kind::Duplicate, &[m(0, 3)]);
    assert_mentions(&vs[0], "p0:3");
    assert_mentions(&vs[0], "group 1");
    assert_mentions(&vs[0], "2 times");
    assert_mentions(&vs[0], "stored more than once");
    assert_mentions(&vs[0], "positions 4 and 7");
    assert_mentions(&vs[0], "consumer 2");
}

/// A restarted producer's resend, stored beside the first send: a duplicate across producer
/// sessions, said so; the same duplicate without the resend does not say it.
#[test]
fn a_duplicate_a_restarted_producer_resent_is_explained_by_its_new_session() {
    let dup = |resent: bool| {
        let mut b = B::new().sent(m(0, 3), 0, &[1]);
        if resent {
            b = b.op(Op::Resend { msg: m(0, 3) });
        }
        let h = b
            .deliver(dv(m(0, 3), 1).pos(4))
            .deliver(dv(m(0, 3), 1).pos(7))
            .build();
        at_most_once(&h)
    };
    let vs = dup(true);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(&vs[0], Invariant::AtMostOnce, Kind::Duplicate, &[m(0, 3)]);
    assert_mentions(&vs[0], "positions 4 and 7");
    assert_mentions(&vs[0], "sent it again, in a new producer session");
    let vs = dup(false);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert!(!vs[0].explanation.contains("producer session"), "{vs:#?}");
    // Without positions (a queue), the resend is the explanation, and a resend alone delivered
    // once is no duplicate.
    let h = B::new()
        .sent(m(0, 1), 0, &[1])
        .op(Op::Resend { msg: m(0, 1) })
        .deliver(dv(m(0, 1), 1))
        .deliver(dv(m(0, 1), 1))
        .build();
    let vs = at_most_once(&h);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_mentions(&vs[0], "its producer restarted and sent it again");
    let h = B::new()
        .sent(m(0, 1), 0, &[1])
        .op(Op::Resend { msg: m(0, 1) })
        .deliver(dv(m(0, 1), 1))
        .build();
    assert!(at_most_once(&h).is_empty());
}

#[test]
fn redelivery_flagged_redelivered_is_explained_as_redelivered() {
    let h = B::new()
        .sent(m(1, 0), 0, &[3])
        .deliver(dv(m(1, 0), 3).redelivered(false))
        .deliver(dv(m(1, 0), 3).consumer(1).redelivered(true))
        .build();
    let vs = at_most_once(&h);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(&vs[0], Invariant::AtMostOnce, Kind::Duplicate, &[m(1, 0)]);
    assert_mentions(&vs[0], "redelivered");
    assert!(!vs[0].explanation.contains("stored more than once"));
}

#[test]
fn redelivery_at_the_same_position_is_explained_as_redelivered() {
    let h = B::new()
        .sent(m(0, 0), 0, &[1])
        .deliver(dv(m(0, 0), 1).pos(5))
        .deliver(dv(m(0, 0), 1).pos(5).session(1).redelivered(true))
        .build();
    let vs = at_most_once(&h);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_mentions(&vs[0], "redelivered");
}

#[test]
fn reconsumption_from_the_same_position_is_explained_as_such() {
    let h = B::new()
        .sent(m(0, 1), 0, &[1])
        .deliver(dv(m(0, 1), 1).pos(1))
        .deliver(dv(m(0, 1), 1).pos(1).session(1))
        .deliver(dv(m(0, 1), 1).pos(1).session(2))
        .build();
    let vs = at_most_once(&h);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(&vs[0], Invariant::AtMostOnce, Kind::Duplicate, &[m(0, 1)]);
    assert_mentions(&vs[0], "3 times");
    assert_mentions(&vs[0], "consumed again from the same position");
}

#[test]
fn same_message_to_different_groups_is_not_a_duplicate() {
    let h = B::new()
        .sent(m(0, 0), 0, &[1, 2])
        .deliver(dv(m(0, 0), 1).pos(0))
        .deliver(dv(m(0, 0), 2).pos(0))
        .build();
    assert!(at_most_once(&h).is_empty());
    assert_clean(&h);
}

#[test]
fn duplicates_are_per_group_in_group_order() {
    let h = B::new()
        .sent(m(0, 0), 0, &[1, 2])
        .deliver(dv(m(0, 0), 2))
        .deliver(dv(m(0, 0), 1))
        .deliver(dv(m(0, 0), 2))
        .deliver(dv(m(0, 0), 1))
        .build();
    let vs = at_most_once(&h);
    assert_eq!(vs.len(), 2, "{vs:#?}");
    assert_violation(&vs[0], Invariant::AtMostOnce, Kind::Duplicate, &[m(0, 0)]);
    assert_mentions(&vs[0], "group 1");
    assert_violation(&vs[1], Invariant::AtMostOnce, Kind::Duplicate, &[m(0, 0)]);
    assert_mentions(&vs[1], "group 2");
}

#[test]
fn distinct_messages_are_not_duplicates() {
    let h = B::new()
        .sent(m(0, 0), 0, &[1])
        .sent(m(0, 1), 0, &[1])
        .sent(m(1, 0), 0, &[1])
        .deliver(dv(m(0, 0), 1).pos(0))
        .deliver(dv(m(0, 1), 1).pos(1))
        .deliver(dv(m(1, 0), 1).pos(2))
        .build();
    assert!(at_most_once(&h).is_empty());
    assert_clean(&h);
}

// ---------------------------------------------------------------------------------------------
// ordering: reordered
// ---------------------------------------------------------------------------------------------

#[test]
fn reordering_within_scope_and_producer_is_flagged() {
    let h = B::new()
        .sent(m(0, 0), 0, &[1])
        .sent(m(0, 1), 0, &[1])
        .deliver(dv(m(0, 1), 1))
        .deliver(dv(m(0, 0), 1))
        .build();
    let vs = ordering(&h, &EVERY);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(
        &vs[0],
        Invariant::Ordering,
        Kind::Reordered,
        &[m(0, 1), m(0, 0)],
    );
    assert_mentions(&vs[0], "group 1");
    assert_mentions(&vs[0], "scope 0");
    // Nothing else is wrong with this history.
    assert_eq!(all_violations(&h), vs);
}

#[test]
fn every_message_delivered_after_a_later_one_is_flagged() {
    let h = B::new()
        .deliver(dv(m(0, 2), 1))
        .deliver(dv(m(0, 0), 1))
        .deliver(dv(m(0, 1), 1))
        .deliver(dv(m(0, 3), 1))
        .build();
    let vs = ordering(&h, &EVERY);
    assert_eq!(vs.len(), 2, "{vs:#?}");
    assert_violation(
        &vs[0],
        Invariant::Ordering,
        Kind::Reordered,
        &[m(0, 2), m(0, 0)],
    );
    assert_violation(
        &vs[1],
        Invariant::Ordering,
        Kind::Reordered,
        &[m(0, 2), m(0, 1)],
    );
}

#[test]
fn reordering_across_producers_is_not_flagged() {
    let h = B::new()
        .sent(m(0, 0), 0, &[1])
        .sent(m(1, 0), 0, &[1])
        .sent(m(0, 1), 0, &[1])
        .deliver(dv(m(1, 0), 1))
        .deliver(dv(m(0, 1), 1))
        .deliver(dv(m(0, 0), 1))
        .build();
    // p0:1 before p0:0 is still a reordering, but p1:0 relative to p0:* is not.
    let vs = ordering(&h, &EVERY);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_eq!(vs[0].msgs, vec![m(0, 1), m(0, 0)]);

    let h = B::new()
        .sent(m(0, 5), 0, &[1])
        .sent(m(1, 0), 0, &[1])
        .deliver(dv(m(0, 5), 1))
        .deliver(dv(m(1, 0), 1))
        .build();
    assert!(ordering(&h, &EVERY).is_empty());
}

#[test]
fn reordering_across_scopes_is_not_flagged() {
    let h = B::new()
        .sent(m(0, 0), 0, &[1])
        .sent(m(0, 1), 1, &[1])
        .deliver(dv(m(0, 1), 1).scope(1))
        .deliver(dv(m(0, 0), 1).scope(0))
        .build();
    assert!(ordering(&h, &EVERY).is_empty());
    assert_clean(&h);
}

#[test]
fn reordering_is_judged_per_group() {
    // Group 1 sees only p0:1, group 2 sees only p0:0: neither group reordered anything.
    let h = B::new()
        .deliver(dv(m(0, 1), 1))
        .deliver(dv(m(0, 0), 2))
        .build();
    assert!(ordering(&h, &EVERY).is_empty());

    // Group 2 reorders, group 1 does not: only group 2 is reported.
    let h = B::new()
        .deliver(dv(m(0, 0), 1))
        .deliver(dv(m(0, 1), 2))
        .deliver(dv(m(0, 1), 1))
        .deliver(dv(m(0, 0), 2))
        .build();
    let vs = ordering(&h, &EVERY);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(
        &vs[0],
        Invariant::Ordering,
        Kind::Reordered,
        &[m(0, 1), m(0, 0)],
    );
    assert_mentions(&vs[0], "group 2");
}

#[test]
fn gaps_in_send_order_are_not_reorderings() {
    let h = B::new()
        .deliver(dv(m(0, 0), 1))
        .deliver(dv(m(0, 3), 1))
        .deliver(dv(m(0, 9), 1))
        .build();
    assert!(ordering(&h, &EVERY).is_empty());
}

#[test]
fn redelivery_of_an_earlier_message_is_a_duplicate_not_a_reordering() {
    let h = B::new()
        .sent(m(0, 0), 0, &[1])
        .sent(m(0, 1), 0, &[1])
        .sent(m(0, 2), 0, &[1])
        .deliver(dv(m(0, 0), 1).redelivered(false))
        .deliver(dv(m(0, 1), 1).redelivered(false))
        .deliver(dv(m(0, 2), 1).redelivered(false))
        .deliver(dv(m(0, 0), 1).consumer(1).redelivered(true))
        .build();
    assert!(
        ordering(&h, &EVERY).is_empty(),
        "{:#?}",
        ordering(&h, &EVERY)
    );
    let vs = all_violations(&h);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(&vs[0], Invariant::AtMostOnce, Kind::Duplicate, &[m(0, 0)]);
    assert_mentions(&vs[0], "redelivered");
}

#[test]
fn rewind_in_one_session_is_nonmonotonic_but_not_reordered() {
    // A redelivery at an earlier position in the same session: duplicate and rewind, no reorder.
    let h = B::new()
        .sent(m(0, 0), 0, &[1])
        .sent(m(0, 1), 0, &[1])
        .deliver(dv(m(0, 0), 1).pos(0))
        .deliver(dv(m(0, 1), 1).pos(1))
        .deliver(dv(m(0, 0), 1).pos(0))
        .build();
    let vs = ordering(&h, &EVERY);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(
        &vs[0],
        Invariant::Ordering,
        Kind::NonmonotonicPoll,
        &[m(0, 1), m(0, 0)],
    );
    assert!(of_kind(&all_violations(&h), Kind::Reordered).is_empty());
    assert_eq!(of_kind(&all_violations(&h), Kind::Duplicate).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// ordering: nonmonotonic-poll
// ---------------------------------------------------------------------------------------------

/// p0:0..=n-1 sent and acked to group 1 in scope 0.
fn sent_n(n: u32) -> B {
    (0..n).fold(B::new(), |b, s| b.sent(m(0, s), 0, &[1]))
}

#[test]
fn position_going_back_within_a_session_is_nonmonotonic() {
    let h = sent_n(3)
        .deliver(dv(m(0, 0), 1).pos(0))
        .deliver(dv(m(0, 1), 1).pos(1))
        .deliver(dv(m(0, 2), 1).pos(2))
        .at(3_500)
        .deliver(dv(m(0, 1), 1).pos(1))
        .build();
    let vs = ordering(&h, &EVERY);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(
        &vs[0],
        Invariant::Ordering,
        Kind::NonmonotonicPoll,
        &[m(0, 2), m(0, 1)],
    );
    assert_mentions(&vs[0], "from position 2 (p0:2) to 1 (p0:1)");
    assert_mentions(&vs[0], "3.500 s");
    assert_mentions(&vs[0], "consumer 0 of group 1");
}

#[test]
fn same_position_twice_within_a_session_is_nonmonotonic() {
    let h = sent_n(1)
        .deliver(dv(m(0, 0), 1).pos(0))
        .deliver(dv(m(0, 0), 1).pos(0))
        .build();
    let vs = ordering(&h, &EVERY);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(
        &vs[0],
        Invariant::Ordering,
        Kind::NonmonotonicPoll,
        &[m(0, 0), m(0, 0)],
    );
}

#[test]
fn position_going_back_across_a_session_change_is_not_nonmonotonic() {
    let h = sent_n(3)
        .deliver(dv(m(0, 0), 1).pos(0))
        .deliver(dv(m(0, 1), 1).pos(1))
        .deliver(dv(m(0, 2), 1).pos(2))
        .deliver(dv(m(0, 1), 1).pos(1).session(1))
        .deliver(dv(m(0, 2), 1).pos(2).session(1))
        .build();
    let vs = ordering(&h, &EVERY);
    assert!(of_kind(&vs, Kind::NonmonotonicPoll).is_empty(), "{vs:#?}");
    assert!(vs.is_empty(), "{vs:#?}");
    // Still duplicates, of course.
    assert_eq!(at_most_once(&h).len(), 2);
}

#[test]
fn positions_are_tracked_per_consumer_scope_and_group() {
    let base = B::new().deliver(dv(m(0, 1), 1).pos(1));
    // Each of these goes "back" to position 0, but for a different (group, consumer, scope).
    let h = base
        .deliver(dv(m(1, 0), 1).pos(0).scope(1))
        .deliver(dv(m(2, 0), 1).pos(0).consumer(1))
        .deliver(dv(m(0, 0), 2).pos(0))
        .deliver(dv(m(0, 1), 2).pos(1))
        .build();
    assert!(
        ordering(&h, &EVERY).is_empty(),
        "{:#?}",
        ordering(&h, &EVERY)
    );
    // Control: the same step back by the same consumer is flagged.
    let h = B::new()
        .deliver(dv(m(0, 1), 1).pos(1))
        .deliver(dv(m(2, 0), 1).pos(0))
        .build();
    let vs = ordering(&h, &EVERY);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(
        &vs[0],
        Invariant::Ordering,
        Kind::NonmonotonicPoll,
        &[m(0, 1), m(2, 0)],
    );
}

#[test]
fn deliveries_without_positions_are_ignored_by_the_position_checks() {
    let h = sent_n(3)
        .deliver(dv(m(0, 0), 1).pos(5))
        .deliver(dv(m(0, 1), 1))
        .deliver(dv(m(0, 2), 1).pos(6))
        .build();
    assert!(ordering(&h, &EVERY).is_empty());
}

// ---------------------------------------------------------------------------------------------
// ordering: poll-skip
// ---------------------------------------------------------------------------------------------

#[test]
fn jump_over_a_position_someone_saw_is_poll_skip() {
    let h = B::new()
        .sent(m(0, 0), 0, &[1, 2])
        .sent(m(0, 1), 0, &[1, 2])
        .sent(m(0, 2), 0, &[1, 2])
        .deliver(dv(m(0, 0), 1).pos(0))
        .deliver(dv(m(0, 1), 1).pos(1))
        .deliver(dv(m(0, 2), 1).pos(2))
        .deliver(dv(m(0, 0), 2).pos(0))
        .deliver(dv(m(0, 2), 2).pos(2))
        .build();
    let vs = ordering(&h, &EVERY);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(
        &vs[0],
        Invariant::Ordering,
        Kind::PollSkip,
        &[m(0, 0), m(0, 2)],
    );
    assert_mentions(&vs[0], "skipping position 1");
    assert_mentions(&vs[0], "group 2");
    assert_mentions(&vs[0], "from position 0 (p0:0) to 2 (p0:2)");
    // The skipped message is also lost for group 2.
    let lost = at_least_once(&h);
    assert_eq!(lost.len(), 1, "{lost:#?}");
    assert_violation(&lost[0], Invariant::AtLeastOnce, Kind::Lost, &[m(0, 1)]);
    assert_mentions(&lost[0], "group 2");
}

#[test]
fn poll_skip_counts_positions_seen_later_in_the_history() {
    // Group 1 jumps 0 -> 2 before group 2 shows that position 1 exists.
    let h = B::new()
        .deliver(dv(m(0, 0), 1).pos(0))
        .deliver(dv(m(0, 2), 1).pos(2))
        .deliver(dv(m(0, 1), 2).pos(1))
        .build();
    let vs = ordering(&h, &EVERY);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(
        &vs[0],
        Invariant::Ordering,
        Kind::PollSkip,
        &[m(0, 0), m(0, 2)],
    );
}

/// Consumer 0 of group 1 polls positions 1..5 of scope 0, 2 and 3 left out (markers, say).
fn poll_1_to_5() -> Op {
    Op::Poll {
        group: 1,
        consumer: 0,
        scope: 0,
        from: 1,
        to: 5,
    }
}

#[test]
fn a_jump_inside_one_poll_over_a_position_someone_saw_is_int_poll_skip() {
    // Jepsen's own case: one poll reads 1 and 4, another read (of group 2) finds 2.
    let h = B::new()
        .op(poll_1_to_5())
        .deliver(dv(m(0, 1), 1).pos(1))
        .deliver(dv(m(0, 4), 1).pos(4))
        .deliver(dv(m(0, 2), 2).pos(2))
        .build();
    let vs = ordering(&h, &EVERY);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(
        &vs[0],
        Invariant::Ordering,
        Kind::IntPollSkip,
        &[m(0, 1), m(0, 4)],
    );
    assert_mentions(&vs[0], "within one poll, skipping position 2");
}

#[test]
fn a_jump_between_polls_is_poll_skip_though_a_later_poll_spans_both() {
    // Position 1 came before the poll was recorded, so the step 1 -> 4 crosses polls.
    let h = B::new()
        .deliver(dv(m(0, 1), 1).pos(1))
        .op(poll_1_to_5())
        .deliver(dv(m(0, 4), 1).pos(4))
        .deliver(dv(m(0, 2), 2).pos(2))
        .build();
    let vs = ordering(&h, &EVERY);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_eq!(vs[0].kind, Kind::PollSkip);
    assert!(!vs[0].explanation.contains("within one poll"));
}

#[test]
fn another_consumers_or_scopes_poll_makes_no_skip_internal() {
    for other in [
        Op::Poll {
            group: 1,
            consumer: 1,
            scope: 0,
            from: 1,
            to: 5,
        },
        Op::Poll {
            group: 1,
            consumer: 0,
            scope: 1,
            from: 1,
            to: 5,
        },
    ] {
        let h = B::new()
            .op(other)
            .deliver(dv(m(0, 1), 1).pos(1))
            .deliver(dv(m(0, 4), 1).pos(4))
            .deliver(dv(m(0, 2), 2).pos(2))
            .build();
        let kinds: Vec<Kind> = ordering(&h, &EVERY).iter().map(|v| v.kind).collect();
        assert_eq!(kinds, vec![Kind::PollSkip]);
    }
}

#[test]
fn a_poll_that_leaves_out_only_positions_nobody_saw_skips_nothing() {
    let h = B::new()
        .op(poll_1_to_5())
        .deliver(dv(m(0, 1), 1).pos(1))
        .deliver(dv(m(0, 4), 1).pos(4))
        .build();
    assert!(ordering(&h, &EVERY).is_empty());
}

#[test]
fn poll_skip_names_the_first_skipped_position() {
    let h = B::new()
        .deliver(dv(m(0, 0), 1).pos(0))
        .deliver(dv(m(0, 3), 1).pos(3))
        .deliver(dv(m(0, 1), 2).pos(1))
        .deliver(dv(m(0, 2), 2).pos(2))
        .build();
    let vs = ordering(&h, &EVERY);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_eq!(vs[0].kind, Kind::PollSkip);
    assert_mentions(&vs[0], "skipping position 1");
}

#[test]
fn jump_over_a_position_nobody_saw_is_not_poll_skip() {
    // Position 1 might be a transaction marker or compacted away: nobody ever delivered it.
    let h = sent_n(2)
        .deliver(dv(m(0, 0), 1).pos(0))
        .deliver(dv(m(0, 1), 1).pos(2))
        .build();
    assert!(ordering(&h, &EVERY).is_empty());
    assert_clean(&h);
}

#[test]
fn jump_across_a_session_change_is_not_poll_skip() {
    let h = B::new()
        .deliver(dv(m(0, 0), 1).pos(0))
        .deliver(dv(m(0, 1), 1).pos(1))
        .deliver(dv(m(0, 2), 1).pos(2))
        .deliver(dv(m(0, 0), 2).pos(0))
        .deliver(dv(m(0, 2), 2).pos(2).session(1))
        .build();
    assert!(
        ordering(&h, &EVERY).is_empty(),
        "{:#?}",
        ordering(&h, &EVERY)
    );
}

#[test]
fn positions_known_in_another_scope_do_not_make_a_skip() {
    let h = B::new()
        .deliver(dv(m(1, 0), 1).pos(1).scope(1))
        .deliver(dv(m(0, 0), 1).pos(0).scope(0))
        .deliver(dv(m(0, 1), 1).pos(2).scope(0))
        .build();
    assert!(
        ordering(&h, &EVERY).is_empty(),
        "{:#?}",
        ordering(&h, &EVERY)
    );
}

#[test]
fn ordering_reports_reorders_before_position_violations() {
    let h = B::new()
        .deliver(dv(m(0, 0), 1).pos(0))
        .deliver(dv(m(0, 1), 1).pos(1))
        .deliver(dv(m(0, 2), 1).pos(2))
        .deliver(dv(m(0, 0), 2).pos(0))
        .deliver(dv(m(0, 2), 2).pos(2))
        .deliver(dv(m(0, 1), 2).pos(1))
        .build();
    let kinds: Vec<Kind> = ordering(&h, &EVERY).iter().map(|v| v.kind).collect();
    assert_eq!(
        kinds,
        vec![Kind::Reordered, Kind::PollSkip, Kind::NonmonotonicPoll]
    );
}

// ---------------------------------------------------------------------------------------------
// ordering: inside the broker's promise
// ---------------------------------------------------------------------------------------------

/// Kafka's promise: per partition, acknowledged sends only.
const ACKNOWLEDGED: OrderingPromise = OrderingPromise {
    acknowledged_only: true,
    excludes_redelivered: false,
    per_consumer_session: false,
};

/// RabbitMQ's promise: per publishing channel, to one consumer's channel, first deliveries only.
const FIRST_DELIVERIES: OrderingPromise = OrderingPromise {
    acknowledged_only: false,
    excludes_redelivered: true,
    per_consumer_session: true,
};

/// ZeroMQ's promise: per connection.
const PER_CONNECTION: OrderingPromise = OrderingPromise {
    acknowledged_only: false,
    excludes_redelivered: false,
    per_consumer_session: true,
};

#[test]
fn acknowledged_sends_delivered_out_of_order_are_reordered() {
    let h = B::new()
        .sent(m(0, 0), 0, &[1])
        .sent(m(0, 1), 0, &[1])
        .deliver(dv(m(0, 1), 1).pos(0))
        .deliver(dv(m(0, 0), 1).pos(1))
        .build();
    let vs = ordering(&h, &ACKNOWLEDGED);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(
        &vs[0],
        Invariant::Ordering,
        Kind::Reordered,
        &[m(0, 1), m(0, 0)],
    );
    assert_mentions(&vs[0], "p0:0 was acknowledged and sent first (scope 0)");
}

#[test]
fn unacknowledged_or_failed_sends_may_be_delivered_anywhere() {
    // p0:1 never answered, p0:2 failed: both land before the acknowledged p0:0 and after p0:3.
    let h = B::new()
        .sent(m(0, 0), 0, &[1])
        .send(m(0, 1), 0, &[1])
        .send(m(0, 2), 0, &[1])
        .fail(m(0, 2))
        .sent(m(0, 3), 0, &[1])
        .deliver(dv(m(0, 2), 1).pos(0))
        .deliver(dv(m(0, 0), 1).pos(1))
        .deliver(dv(m(0, 3), 1).pos(2))
        .deliver(dv(m(0, 1), 1).pos(3))
        .build();
    assert!(
        ordering(&h, &ACKNOWLEDGED).is_empty(),
        "{:#?}",
        ordering(&h, &ACKNOWLEDGED)
    );
    // Only the promise makes the difference: with every send promised, both are reordered.
    assert_eq!(of_kind(&ordering(&h, &EVERY), Kind::Reordered).len(), 2);
}

#[test]
fn acknowledged_sends_are_a_subsequence_of_the_deliveries() {
    // OpenChaos: 0, 2 acknowledged, 1 failed; 2 then 0 breaks the subsequence whatever 1 does.
    let base = || {
        B::new()
            .sent(m(0, 0), 0, &[1])
            .send(m(0, 1), 0, &[1])
            .fail(m(0, 1))
            .sent(m(0, 2), 0, &[1])
    };
    let held = base()
        .deliver(dv(m(0, 1), 1))
        .deliver(dv(m(0, 0), 1))
        .deliver(dv(m(0, 2), 1))
        .build();
    assert!(ordering(&held, &ACKNOWLEDGED).is_empty());
    let broken = base()
        .deliver(dv(m(0, 2), 1))
        .deliver(dv(m(0, 1), 1))
        .deliver(dv(m(0, 0), 1))
        .build();
    let vs = ordering(&broken, &ACKNOWLEDGED);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_eq!(vs[0].msgs, vec![m(0, 2), m(0, 0)]);
}

#[test]
fn the_acknowledged_promise_keeps_the_position_checks() {
    // Kafka: a consumer's walk over offsets is judged whatever the producer learnt.
    let h = B::new()
        .send(m(0, 0), 0, &[1])
        .send(m(0, 1), 0, &[1])
        .deliver(dv(m(0, 0), 1).pos(0))
        .deliver(dv(m(0, 1), 1).pos(1))
        .deliver(dv(m(0, 0), 1).pos(0))
        .deliver(dv(m(0, 0), 2).pos(0))
        .deliver(dv(m(0, 2), 2).pos(2))
        .build();
    let kinds: Vec<Kind> = ordering(&h, &ACKNOWLEDGED).iter().map(|v| v.kind).collect();
    assert_eq!(kinds, vec![Kind::NonmonotonicPoll, Kind::PollSkip]);
}

#[test]
fn redelivered_out_of_order_is_outside_the_first_delivery_promise() {
    // p0:1 was requeued unhandled and comes back, flagged, after p0:2.
    let h = B::new()
        .sent(m(0, 0), 1, &[0])
        .sent(m(0, 1), 1, &[0])
        .sent(m(0, 2), 1, &[0])
        .deliver(dv(m(0, 0), 0).scope(1).session(1).redelivered(false))
        .deliver(dv(m(0, 2), 0).scope(1).session(1).redelivered(false))
        .deliver(dv(m(0, 1), 0).scope(1).session(1).redelivered(true))
        .build();
    assert!(
        ordering(&h, &FIRST_DELIVERIES).is_empty(),
        "{:#?}",
        ordering(&h, &FIRST_DELIVERIES)
    );
    assert_eq!(of_kind(&ordering(&h, &EVERY), Kind::Reordered).len(), 1);
}

#[test]
fn a_redelivery_sets_no_order_for_the_first_deliveries_after_it() {
    let h = B::new()
        .sent(m(0, 0), 1, &[0])
        .sent(m(0, 1), 1, &[0])
        .sent(m(0, 2), 1, &[0])
        .deliver(dv(m(0, 2), 0).scope(1).redelivered(true))
        .deliver(dv(m(0, 0), 0).scope(1).redelivered(false))
        .deliver(dv(m(0, 1), 0).scope(1).redelivered(false))
        .build();
    assert!(
        ordering(&h, &FIRST_DELIVERIES).is_empty(),
        "{:#?}",
        ordering(&h, &FIRST_DELIVERIES)
    );
}

#[test]
fn first_deliveries_out_of_order_on_one_channel_are_reordered() {
    let h = B::new()
        .sent(m(0, 0), 1, &[0])
        .sent(m(0, 1), 1, &[0])
        .deliver(dv(m(0, 1), 0).scope(1).session(1).redelivered(false))
        .deliver(dv(m(0, 0), 0).scope(1).session(1).redelivered(false))
        .build();
    let vs = ordering(&h, &FIRST_DELIVERIES);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(
        &vs[0],
        Invariant::Ordering,
        Kind::Reordered,
        &[m(0, 1), m(0, 0)],
    );
    assert_mentions(&vs[0], "scope 1, consumer 0 session 1");
}

#[test]
fn two_publishing_channels_interleaved_are_not_reordered() {
    // The publisher reconnected: p0:1 went out on channel 2 and overtook p0:0 of channel 1.
    let h = B::new()
        .sent(m(0, 0), 1, &[0])
        .sent(m(0, 1), 2, &[0])
        .deliver(dv(m(0, 1), 0).scope(2).redelivered(false))
        .deliver(dv(m(0, 0), 0).scope(1).redelivered(false))
        .build();
    assert!(ordering(&h, &FIRST_DELIVERIES).is_empty());
}

#[test]
fn competing_consumers_and_reconnects_are_outside_a_per_session_promise() {
    let sent = || {
        B::new()
            .sent(m(0, 0), 0, &[0])
            .sent(m(0, 1), 0, &[0])
            .sent(m(0, 2), 0, &[0])
    };
    // Two consumers of one group: each hands its own messages over in order.
    let competing = sent()
        .deliver(dv(m(0, 1), 0).consumer(1))
        .deliver(dv(m(0, 0), 0).consumer(0))
        .deliver(dv(m(0, 2), 0).consumer(1))
        .build();
    // One consumer, which reconnected between p0:2 and p0:1.
    let reconnected = sent()
        .deliver(dv(m(0, 2), 0).session(0))
        .deliver(dv(m(0, 1), 0).session(1))
        .build();
    for h in [&competing, &reconnected] {
        for promise in [FIRST_DELIVERIES, PER_CONNECTION] {
            assert!(
                ordering(h, &promise).is_empty(),
                "{:#?}",
                ordering(h, &promise)
            );
        }
        assert_eq!(of_kind(&ordering(h, &EVERY), Kind::Reordered).len(), 1);
    }
    // One connection out of order is still a reordering.
    let one = sent()
        .deliver(dv(m(0, 2), 0).consumer(1).session(3))
        .deliver(dv(m(0, 1), 0).consumer(1).session(3))
        .build();
    let vs = ordering(&one, &PER_CONNECTION);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_eq!(vs[0].msgs, vec![m(0, 2), m(0, 1)]);
}

#[test]
fn a_redelivery_is_no_step_of_a_consumer_walk_when_the_promise_excludes_it() {
    let h = sent_n(2)
        .deliver(dv(m(0, 0), 1).pos(0).redelivered(false))
        .deliver(dv(m(0, 1), 1).pos(1).redelivered(false))
        .deliver(dv(m(0, 0), 1).pos(0).redelivered(true))
        .build();
    assert!(ordering(&h, &FIRST_DELIVERIES).is_empty());
    let kinds: Vec<Kind> = ordering(&h, &EVERY).iter().map(|v| v.kind).collect();
    assert_eq!(kinds, vec![Kind::NonmonotonicPoll]);
}

proptest! {
    /// Kafka: unacknowledged and failed sends delivered anywhere among the acknowledged ones,
    /// which come in send order, break nothing promised; two acknowledged ones swapped do.
    #[test]
    fn prop_unacknowledged_sends_may_land_anywhere(
        acked in prop::collection::vec(any::<bool>(), 2..10),
        places in prop::collection::vec(any::<Index>(), 10),
        swap in any::<(Index, Index)>(),
    ) {
        let sends = || {
            acked.iter().enumerate().fold(B::new(), |b, (s, &a)| {
                let msg = m(0, s as u32);
                match (a, s % 2) {
                    (true, _) => b.sent(msg, 0, &[1]),
                    (false, 0) => b.send(msg, 0, &[1]).fail(msg),
                    (false, _) => b.send(msg, 0, &[1]),
                }
            })
        };
        let deliver = |order: &[u32]| {
            order
                .iter()
                .fold(sends(), |b, &s| b.deliver(dv(m(0, s), 1)))
                .build()
        };
        let seqs = 0..acked.len() as u32;
        let mut order: Vec<u32> = seqs.clone().filter(|&s| acked[s as usize]).collect();
        for (s, place) in seqs.filter(|&s| !acked[s as usize]).zip(&places) {
            order.insert(place.index(order.len() + 1), s);
        }
        let h = deliver(&order);
        prop_assert!(ordering(&h, &ACKNOWLEDGED).is_empty(), "{:#?}", ordering(&h, &ACKNOWLEDGED));

        let at: Vec<usize> = (0..order.len()).filter(|&i| acked[order[i] as usize]).collect();
        prop_assume!(at.len() >= 2);
        let (i, j) = (swap.0.index(at.len()), swap.1.index(at.len()));
        prop_assume!(i != j);
        order.swap(at[i], at[j]);
        let vs = ordering(&deliver(&order), &ACKNOWLEDGED);
        prop_assert!(!of_kind(&vs, Kind::Reordered).is_empty(), "{:?}", order);
    }

    /// RabbitMQ and ZeroMQ: consumer sessions (channels, connections) each in send order,
    /// interleaved in any way, are in order.
    #[test]
    fn prop_interleaved_sessions_are_in_order(
        session_of in prop::collection::vec(0..3u32, 1..12),
        picks in prop::collection::vec(any::<Index>(), 12),
    ) {
        let mut queues: Vec<Vec<u32>> = vec![Vec::new(); 3];
        for (s, &session) in session_of.iter().enumerate() {
            queues[session as usize].push(s as u32);
        }
        let mut b = (0..session_of.len() as u32).fold(B::new(), |b, s| b.sent(m(0, s), 0, &[0]));
        for pick in picks.iter().cycle() {
            let ready: Vec<usize> = (0..3).filter(|&q| !queues[q].is_empty()).collect();
            if ready.is_empty() {
                break;
            }
            let q = ready[pick.index(ready.len())];
            let s = queues[q].remove(0);
            // Sessions 0 and 1 are two consumers, 2 is consumer 0 after a reconnect.
            let d = dv(m(0, s), 0).consumer(q as u32 % 2).session((q / 2) as u64);
            b = b.deliver(d);
        }
        let h = b.build();
        for promise in [FIRST_DELIVERIES, PER_CONNECTION] {
            prop_assert!(ordering(&h, &promise).is_empty(), "{:#?}", ordering(&h, &promise));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// no-unexpected
// ---------------------------------------------------------------------------------------------

#[test]
fn delivery_of_a_never_sent_message_is_unexpected() {
    let h = B::new()
        .sent(m(0, 0), 0, &[2])
        .deliver(dv(m(0, 0), 2))
        .at(4_321)
        .deliver(dv(m(9, 9), 2))
        .build();
    let vs = no_unexpected(&h);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(
        &vs[0],
        Invariant::NoUnexpected,
        Kind::Unexpected,
        &[m(9, 9)],
    );
    assert_mentions(&vs[0], "group 2");
    assert_mentions(&vs[0], "4.321 s");
    assert_mentions(&vs[0], "no producer ever sent it");
}

#[test]
fn an_unexpected_message_is_reported_once_and_in_delivery_order() {
    let h = B::new()
        .deliver(dv(m(5, 1), 1))
        .deliver(dv(m(5, 1), 2))
        .deliver(dv(m(3, 0), 1))
        .deliver(dv(m(5, 1), 1))
        .build();
    let vs = no_unexpected(&h);
    assert_eq!(vs.len(), 2, "{vs:#?}");
    assert_violation(
        &vs[0],
        Invariant::NoUnexpected,
        Kind::Unexpected,
        &[m(5, 1)],
    );
    assert_mentions(&vs[0], "group 1");
    assert_violation(
        &vs[1],
        Invariant::NoUnexpected,
        Kind::Unexpected,
        &[m(3, 0)],
    );
}

#[test]
fn ack_without_send_does_not_make_a_delivery_expected() {
    let h = B::new().ack(m(0, 0)).deliver(dv(m(0, 0), 1)).build();
    let vs = no_unexpected(&h);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(
        &vs[0],
        Invariant::NoUnexpected,
        Kind::Unexpected,
        &[m(0, 0)],
    );
}

#[test]
fn sent_messages_are_expected_even_if_failed_unacked_or_delivered_first() {
    let h = B::new()
        .deliver(dv(m(0, 2), 1)) // the harness saw the delivery before the send
        .send(m(0, 0), 0, &[1])
        .fail(m(0, 0))
        .send(m(0, 1), 0, &[1])
        .send(m(0, 2), 0, &[1])
        .deliver(dv(m(0, 0), 1))
        .deliver(dv(m(0, 1), 1))
        .build();
    assert!(no_unexpected(&h).is_empty());
}

// ---------------------------------------------------------------------------------------------
// check, and the crate's small API around it
// ---------------------------------------------------------------------------------------------

/// A history with every kind of violation in it.
fn messy() -> History {
    B::new()
        .sent(m(0, 0), 0, &[1, 2])
        .sent(m(0, 1), 0, &[1, 2])
        .sent(m(0, 2), 0, &[1, 2])
        .sent(m(0, 3), 0, &[1, 2])
        .deliver(dv(m(0, 0), 1).pos(0))
        .deliver(dv(m(0, 1), 1).pos(1))
        .deliver(dv(m(0, 2), 1).pos(2))
        .deliver(dv(m(0, 3), 1).pos(3))
        .deliver(dv(m(0, 0), 2).pos(0))
        .deliver(dv(m(0, 2), 2).pos(2)) // poll-skip over 1
        .deliver(dv(m(0, 1), 2).pos(1)) // reordered, nonmonotonic
        .deliver(dv(m(0, 1), 2).pos(5).session(1)) // duplicate, stored twice
        .deliver(dv(m(7, 7), 1)) // unexpected
        // p0:3 lost for group 2
        .build()
}

#[test]
fn check_dispatches_to_each_checker() {
    let h = messy();
    assert_eq!(check(Invariant::AtLeastOnce, &h, &EVERY), at_least_once(&h));
    assert_eq!(check(Invariant::AtMostOnce, &h, &EVERY), at_most_once(&h));
    assert_eq!(check(Invariant::Ordering, &h, &EVERY), ordering(&h, &EVERY));
    assert_eq!(
        check(Invariant::NoUnexpected, &h, &EVERY),
        no_unexpected(&h)
    );
}

#[test]
fn check_finds_every_kind_in_the_messy_history() {
    let h = messy();

    let lost = check(Invariant::AtLeastOnce, &h, &EVERY);
    assert_eq!(lost.len(), 1, "{lost:#?}");
    assert_violation(&lost[0], Invariant::AtLeastOnce, Kind::Lost, &[m(0, 3)]);
    assert_mentions(&lost[0], "group 2");

    let dup = check(Invariant::AtMostOnce, &h, &EVERY);
    assert_eq!(dup.len(), 1, "{dup:#?}");
    assert_violation(&dup[0], Invariant::AtMostOnce, Kind::Duplicate, &[m(0, 1)]);
    assert_mentions(&dup[0], "stored more than once, at positions 1 and 5");

    let ord = check(Invariant::Ordering, &h, &EVERY);
    assert_eq!(ord.len(), 3, "{ord:#?}");
    assert_violation(
        &ord[0],
        Invariant::Ordering,
        Kind::Reordered,
        &[m(0, 2), m(0, 1)],
    );
    assert_violation(
        &ord[1],
        Invariant::Ordering,
        Kind::PollSkip,
        &[m(0, 0), m(0, 2)],
    );
    assert_violation(
        &ord[2],
        Invariant::Ordering,
        Kind::NonmonotonicPoll,
        &[m(0, 2), m(0, 1)],
    );

    let unexp = check(Invariant::NoUnexpected, &h, &EVERY);
    assert_eq!(unexp.len(), 1, "{unexp:#?}");
    assert_violation(
        &unexp[0],
        Invariant::NoUnexpected,
        Kind::Unexpected,
        &[m(7, 7)],
    );
}

#[test]
fn check_on_clean_and_empty_histories_finds_nothing() {
    assert_clean(&History::default());
    let h = B::new()
        .sent(m(0, 0), 0, &[1, 2])
        .sent(m(1, 0), 0, &[1, 2])
        .sent(m(0, 1), 1, &[1])
        .deliver(dv(m(0, 0), 1).pos(0))
        .deliver(dv(m(0, 1), 1).scope(1).pos(0))
        .deliver(dv(m(0, 0), 2).pos(0))
        .deliver(dv(m(1, 0), 1).pos(1))
        .deliver(dv(m(1, 0), 2).pos(1))
        .commit(1, 0, 0, 1)
        .commit(2, 0, 0, 1)
        .build();
    for inv in ALL {
        assert!(
            check(inv, &h, &EVERY).is_empty(),
            "{inv}: {:#?}",
            check(inv, &h, &EVERY)
        );
    }
}

#[test]
fn violation_display_and_names() {
    let h = B::new().sent(m(0, 3), 0, &[1]).build();
    let v = &at_least_once(&h)[0];
    let shown = v.to_string();
    assert!(shown.starts_with("at-least-once (lost): "), "{shown}");
    assert!(shown.ends_with(&v.explanation), "{shown}");

    for inv in ALL {
        assert_eq!(inv.name().parse::<Invariant>(), Ok(inv));
        assert_eq!(inv.to_string(), inv.name());
    }
    assert!("exactly-once".parse::<Invariant>().is_err());
    let names: Vec<&str> = [
        Kind::Lost,
        Kind::Duplicate,
        Kind::Reordered,
        Kind::PollSkip,
        Kind::NonmonotonicPoll,
        Kind::Unexpected,
    ]
    .iter()
    .map(|k| k.name())
    .collect();
    assert_eq!(
        names,
        [
            "lost",
            "duplicate",
            "reordered",
            "poll-skip",
            "nonmonotonic-poll",
            "unexpected"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

/// Shape of a perfect history: `producers` producers each send `per_producer` messages; message
/// `k` of the whole send sequence goes to scope `scope_picks[k] % scopes`; sends of different
/// producers interleave according to `send_picks`, deliveries of different (group, scope) streams
/// according to `deliver_picks`.
#[derive(Clone, Debug)]
struct Shape {
    producers: u32,
    per_producer: u32,
    scopes: u32,
    groups: u32,
    scope_picks: Vec<u32>,
    send_picks: Vec<usize>,
    deliver_picks: Vec<usize>,
}

fn shape(min_per_producer: u32) -> impl Strategy<Value = Shape> {
    (1u32..=3, min_per_producer..=6, 1u32..=2, 1u32..=3).prop_flat_map(
        |(producers, per_producer, scopes, groups)| {
            let total = (producers * per_producer) as usize;
            (
                proptest::collection::vec(0..scopes, total),
                proptest::collection::vec(any::<usize>(), total),
                proptest::collection::vec(any::<usize>(), total * groups as usize),
            )
                .prop_map(move |(scope_picks, send_picks, deliver_picks)| Shape {
                    producers,
                    per_producer,
                    scopes,
                    groups,
                    scope_picks,
                    send_picks,
                    deliver_picks,
                })
        },
    )
}

/// Merges streams, keeping each stream's order, taking the next element from the stream `picks`
/// chooses among those not yet exhausted.
fn interleave<T>(streams: Vec<Vec<T>>, picks: &[usize]) -> Vec<T> {
    let mut streams: Vec<std::collections::VecDeque<T>> =
        streams.into_iter().map(Into::into).collect();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        streams.retain(|s| !s.is_empty());
        if streams.is_empty() {
            return out;
        }
        let pick = picks.get(i).copied().unwrap_or(0) % streams.len();
        out.push(streams[pick].pop_front().unwrap());
        i += 1;
    }
}

/// Group ids are 10, 11, …; consumer of group g is g * 100.
fn group_id(g: u32) -> GroupId {
    10 + g
}

fn perfect(s: &Shape) -> History {
    let streams: Vec<Vec<MsgId>> = (0..s.producers)
        .map(|p| (0..s.per_producer).map(|q| m(p, q)).collect())
        .collect();
    let send_order = interleave(streams, &s.send_picks);
    let groups: Vec<GroupId> = (0..s.groups).map(group_id).collect();

    let mut b = B::new();
    // Each scope's log, in append (= send) order.
    let mut logs: Vec<Vec<MsgId>> = vec![Vec::new(); s.scopes as usize];
    for (k, msg) in send_order.iter().enumerate() {
        let scope = s.scope_picks[k] % s.scopes;
        logs[scope as usize].push(*msg);
        b = b.sent(*msg, scope, &groups);
    }
    let mut streams = Vec::new();
    for &g in &groups {
        for (scope, log) in logs.iter().enumerate() {
            let stream: Vec<Dv> = log
                .iter()
                .enumerate()
                .map(|(pos, msg)| {
                    dv(*msg, g)
                        .consumer(g * 100)
                        .scope(scope as u32)
                        .pos(pos as u64)
                        .redelivered(false)
                })
                .collect();
            streams.push(stream);
        }
    }
    for d in interleave(streams, &s.deliver_picks) {
        b = b.deliver(d);
    }
    let h = b.build();
    assert_eq!(
        h.deliveries(),
        (s.producers * s.per_producer * s.groups) as usize
    );
    h
}

fn delivery_indices(h: &History) -> Vec<usize> {
    h.events
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e.op, Op::Deliver { .. }))
        .map(|(i, _)| i)
        .collect()
}

fn deliver_fields(e: &Event) -> (MsgId, GroupId, u32) {
    match e.op {
        Op::Deliver {
            msg, group, scope, ..
        } => (msg, group, scope),
        _ => unreachable!("not a delivery: {e:?}"),
    }
}

/// Arbitrary, mostly nonsensical histories over a small domain, for determinism.
fn arbitrary_history() -> impl Strategy<Value = History> {
    let msg = (0u32..3, 0u32..4).prop_map(|(p, s)| m(p, s));
    let op = prop_oneof![
        (
            msg.clone(),
            0u32..2,
            proptest::collection::vec(0u32..3, 0..3)
        )
            .prop_map(|(msg, scope, audience)| Op::Send {
                msg,
                scope,
                audience,
                key: None,
            }),
        msg.clone().prop_map(|msg| Op::Ack { msg }),
        msg.clone().prop_map(|msg| Op::Fail {
            msg,
            reason: "x".into()
        }),
        (
            msg,
            0u32..3,
            0u32..2,
            0u32..2,
            proptest::option::of(0u64..6),
            0u64..2,
            proptest::option::of(any::<bool>())
        )
            .prop_map(
                |(msg, group, consumer, scope, position, session, redelivered)| Op::Deliver {
                    msg,
                    group,
                    consumer,
                    scope,
                    position,
                    session,
                    redelivered,
                }
            ),
        (0u32..3, 0u32..2, 0u32..2, 0u64..6).prop_map(|(group, consumer, scope, position)| {
            Op::Commit {
                group,
                consumer,
                scope,
                position,
            }
        }),
    ];
    proptest::collection::vec((0u64..10_000, op), 0..40).prop_map(|ops| History {
        events: ops
            .into_iter()
            .map(|(time_ms, op)| Event {
                time_ms,
                node: "n".into(),
                op,
            })
            .collect(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// (1) A perfect history violates nothing.
    #[test]
    fn prop_perfect_history_is_clean(s in shape(0)) {
        let h = perfect(&s);
        for inv in ALL {
            let vs = check(inv, &h, &EVERY);
            prop_assert!(vs.is_empty(), "{}: {:#?}", inv, vs);
        }
    }

    /// (2) Dropping one delivery of an acked message loses exactly that message, once.
    #[test]
    fn prop_dropped_delivery_is_exactly_one_lost(s in shape(1), which in any::<Index>()) {
        let mut h = perfect(&s);
        let idx = delivery_indices(&h);
        let at = idx[which.index(idx.len())];
        let (msg, group, _) = deliver_fields(&h.events[at]);
        h.events.remove(at);

        let lost = at_least_once(&h);
        prop_assert_eq!(lost.len(), 1, "{:#?}", lost);
        prop_assert_eq!(lost[0].kind, Kind::Lost);
        prop_assert_eq!(lost[0].invariant, Invariant::AtLeastOnce);
        prop_assert_eq!(&lost[0].msgs, &vec![msg]);
        prop_assert!(lost[0].explanation.contains(&msg.to_string()), "{}", lost[0]);
        let group_text = format!("group {group} never");
        prop_assert!(lost[0].explanation.contains(&group_text), "{}", lost[0]);
        prop_assert_eq!(lost[0].explanation.contains("other groups did"), s.groups > 1);

        let all = all_violations(&h);
        prop_assert_eq!(of_kind(&all, Kind::Lost).len(), 1);
        prop_assert!(at_most_once(&h).is_empty());
        prop_assert!(no_unexpected(&h).is_empty());
        prop_assert!(of_kind(&all, Kind::Reordered).is_empty(), "{:#?}", all);
    }

    /// (3) Re-delivering one message at the end is exactly one duplicate and no reordering.
    #[test]
    fn prop_duplicated_delivery_is_exactly_one_duplicate(
        s in shape(1),
        which in any::<Index>(),
    ) {
        let mut h = perfect(&s);
        let idx = delivery_indices(&h);
        let mut copy = h.events[idx[which.index(idx.len())]].clone();
        let (msg, group, _) = deliver_fields(&copy);
        copy.time_ms = h.events.last().unwrap().time_ms + 1;
        h.events.push(copy);

        let dup = at_most_once(&h);
        prop_assert_eq!(dup.len(), 1, "{:#?}", dup);
        prop_assert_eq!(dup[0].kind, Kind::Duplicate);
        prop_assert_eq!(dup[0].invariant, Invariant::AtMostOnce);
        prop_assert_eq!(&dup[0].msgs, &vec![msg]);
        prop_assert!(dup[0].explanation.contains(&msg.to_string()), "{}", dup[0]);
        let group_text = format!("group {group} delivered");
        prop_assert!(dup[0].explanation.contains(&group_text), "{}", dup[0]);
        prop_assert!(dup[0].explanation.contains("2 times"), "{}", dup[0]);
        prop_assert!(
            dup[0].explanation.contains("consumed again from the same position"),
            "{}",
            dup[0]
        );

        let all = all_violations(&h);
        prop_assert_eq!(of_kind(&all, Kind::Duplicate).len(), 1);
        prop_assert!(of_kind(&all, Kind::Reordered).is_empty(), "{:#?}", all);
        prop_assert!(at_least_once(&h).is_empty());
        prop_assert!(no_unexpected(&h).is_empty());
    }

    /// (4) Swapping two consecutive deliveries of one (producer, scope, group) is a reordering.
    #[test]
    fn prop_swapped_deliveries_are_reordered(s in shape(3), which in any::<Index>()) {
        let mut h = perfect(&s);
        let idx = delivery_indices(&h);
        // Pairs (i, j) of event indices: j is the next delivery with i's (producer, scope, group).
        let mut pairs = Vec::new();
        for (a, &i) in idx.iter().enumerate() {
            let (mi, gi, si) = deliver_fields(&h.events[i]);
            let next = idx[a + 1..].iter().copied().find(|&j| {
                let (mj, gj, sj) = deliver_fields(&h.events[j]);
                mj.producer == mi.producer && gj == gi && sj == si
            });
            if let Some(j) = next {
                pairs.push((i, j));
            }
        }
        // Three messages per producer over at most two scopes: some scope holds two.
        prop_assert!(!pairs.is_empty());
        let (i, j) = pairs[which.index(pairs.len())];
        let (earlier, group, _) = deliver_fields(&h.events[i]);
        let (later, _, _) = deliver_fields(&h.events[j]);
        prop_assert!(earlier.seq < later.seq);
        h.events.swap(i, j);

        let ord = ordering(&h, &EVERY);
        let reordered = of_kind(&ord, Kind::Reordered);
        prop_assert!(!reordered.is_empty(), "{:#?}", ord);
        prop_assert_eq!(reordered.len(), 1, "{:#?}", ord);
        prop_assert_eq!(reordered[0].invariant, Invariant::Ordering);
        prop_assert_eq!(&reordered[0].msgs, &vec![later, earlier]);
        prop_assert!(reordered[0].explanation.contains(&earlier.to_string()));
        prop_assert!(reordered[0].explanation.contains(&later.to_string()));
        let group_text = format!("group {group} ");
        prop_assert!(reordered[0].explanation.contains(&group_text));
        // Same positions, now walked backwards by that consumer.
        prop_assert!(!of_kind(&ord, Kind::NonmonotonicPoll).is_empty(), "{:#?}", ord);
        prop_assert!(at_least_once(&h).is_empty());
        prop_assert!(at_most_once(&h).is_empty());
        prop_assert!(no_unexpected(&h).is_empty());
    }

    /// (5) Same history, same violations, in the same order; each names its invariant and
    /// messages.
    #[test]
    fn prop_checkers_are_deterministic(h in arbitrary_history()) {
        let copy = h.clone();
        for inv in ALL {
            let first = check(inv, &h, &EVERY);
            let second = check(inv, &copy, &EVERY);
            prop_assert_eq!(&first, &second);
            prop_assert_eq!(&first, &check(inv, &h, &EVERY));
            for v in &first {
                prop_assert_eq!(v.invariant, inv);
                prop_assert!(!v.msgs.is_empty());
                for msg in &v.msgs {
                    prop_assert!(v.explanation.contains(&msg.to_string()), "{}", v);
                }
            }
        }
    }

    /// (5, on perfect-history mutations) Determinism holds for the mutated histories too.
    #[test]
    fn prop_checkers_are_deterministic_on_mutations(
        s in shape(1),
        drop in any::<Index>(),
        dup in any::<Index>(),
    ) {
        let mut h = perfect(&s);
        let idx = delivery_indices(&h);
        let copy = h.events[idx[dup.index(idx.len())]].clone();
        h.events.push(copy);
        h.events.remove(idx[drop.index(idx.len())]);
        prop_assert_eq!(all_violations(&h), all_violations(&h.clone()));
    }
}

// ---------------------------------------------------------------------------------------------
// atomicity (multipart messages)
// ---------------------------------------------------------------------------------------------

/// A three-part message p0:0..=2 and a single message p0:3, all sent and acknowledged.
fn multipart() -> B {
    let parts = vec![m(0, 0), m(0, 1), m(0, 2)];
    let mut b = B::new();
    for msg in parts.iter().copied().chain([m(0, 3)]) {
        b = b.sent(msg, 0, &[0]);
    }
    b.op(Op::Multipart { parts })
}

#[test]
fn whole_multipart_messages_in_a_row_are_atomic_even_twice() {
    let mut b = multipart();
    for seq in [0, 1, 2, 3, 0, 1, 2] {
        b = b.deliver(dv(m(0, seq), 0));
    }
    assert!(check(Invariant::Atomicity, &b.build(), &EVERY).is_empty());
    // Not delivering the message at all is a loss, not a tear.
    let h = multipart().deliver(dv(m(0, 3), 0)).build();
    assert!(check(Invariant::Atomicity, &h, &EVERY).is_empty());
}

#[test]
fn a_missing_part_tears_the_message() {
    let h = multipart()
        .deliver(dv(m(0, 0), 0))
        .deliver(dv(m(0, 1), 0))
        .build();
    let vs = check(Invariant::Atomicity, &h, &EVERY);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(
        &vs[0],
        Invariant::Atomicity,
        Kind::Torn,
        &[m(0, 0), m(0, 1), m(0, 2)],
    );
    assert_mentions(&vs[0], "never p0:2");
}

#[test]
fn another_message_between_parts_or_a_part_out_of_place_tears_it() {
    let interleaved = multipart()
        .deliver(dv(m(0, 0), 0))
        .deliver(dv(m(0, 3), 0))
        .deliver(dv(m(0, 1), 0))
        .deliver(dv(m(0, 2), 0))
        .build();
    let vs = check(Invariant::Atomicity, &interleaved, &EVERY);
    assert!(!vs.is_empty());
    assert!(vs.iter().all(|v| v.kind == Kind::Torn));
    assert_mentions(&vs[0], "the next part due was p0:1");
    // Two consumers of one group each holding part of it.
    let split = multipart()
        .deliver(dv(m(0, 0), 0))
        .deliver(dv(m(0, 1), 0).consumer(1))
        .deliver(dv(m(0, 2), 0).consumer(1))
        .build();
    assert!(!check(Invariant::Atomicity, &split, &EVERY).is_empty());
}

// ---------------------------------------------------------------------------------------------
// atomicity (transactions)
// ---------------------------------------------------------------------------------------------

/// Transaction 1 [p0:0, p0:1] ended with `outcome`, and a single message p1:0 outside it; all
/// sent to groups 0 and 1, the committed ones acknowledged.
fn transaction(outcome: TxnOutcome) -> B {
    let msgs = vec![m(0, 0), m(0, 1)];
    let mut b = B::new();
    for msg in &msgs {
        b = b.send(*msg, 0, &[0, 1]);
    }
    b = b.sent(m(1, 0), 0, &[0, 1]);
    if outcome == TxnOutcome::Committed {
        b = b.ack(m(0, 0)).ack(m(0, 1));
    }
    b.op(Op::Transaction {
        txn: 1,
        msgs,
        outcome,
    })
}

fn atomicity_of(h: &History) -> Vec<Violation> {
    check(Invariant::Atomicity, h, &EVERY)
}

#[test]
fn a_committed_transaction_delivered_whole_and_interleaved_is_atomic() {
    let h = transaction(TxnOutcome::Committed)
        .deliver(dv(m(0, 0), 0))
        .deliver(dv(m(1, 0), 0))
        .deliver(dv(m(0, 1), 0))
        .deliver(dv(m(0, 1), 1))
        .deliver(dv(m(0, 0), 1).consumer(1))
        .deliver(dv(m(1, 0), 1))
        .build();
    assert!(atomicity_of(&h).is_empty(), "{:#?}", atomicity_of(&h));
    assert_eq!(h.atomic_units(), 1);
    // Never delivered at all is at-least-once's loss, not a torn transaction.
    let unseen = transaction(TxnOutcome::Committed)
        .deliver(dv(m(1, 0), 0))
        .deliver(dv(m(1, 0), 1))
        .build();
    assert!(atomicity_of(&unseen).is_empty());
    assert_eq!(at_least_once(&unseen).len(), 2);
}

#[test]
fn a_committed_transaction_half_delivered_to_one_group_is_torn() {
    let h = transaction(TxnOutcome::Committed)
        .deliver(dv(m(0, 0), 0))
        .deliver(dv(m(0, 1), 0))
        .deliver(dv(m(0, 1), 1))
        .build();
    let vs = atomicity_of(&h);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(
        &vs[0],
        Invariant::Atomicity,
        Kind::Torn,
        &[m(0, 0), m(0, 1)],
    );
    assert_mentions(&vs[0], "group 1 delivered p0:1 of transaction 1");
    assert_mentions(&vs[0], "committed");
    assert_mentions(&vs[0], "never p0:0");
}

#[test]
fn an_in_doubt_transaction_is_all_or_nothing() {
    let none = transaction(TxnOutcome::InDoubt).build();
    assert!(atomicity_of(&none).is_empty());
    let whole = transaction(TxnOutcome::InDoubt)
        .deliver(dv(m(0, 0), 0))
        .deliver(dv(m(0, 1), 0))
        .build();
    assert!(atomicity_of(&whole).is_empty());
    let part = transaction(TxnOutcome::InDoubt)
        .deliver(dv(m(0, 1), 0))
        .build();
    let vs = atomicity_of(&part);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_eq!(vs[0].kind, Kind::Torn);
    assert_mentions(&vs[0], "in doubt");
}

#[test]
fn a_delivered_message_of_an_aborted_transaction_is_an_aborted_read() {
    let clean = transaction(TxnOutcome::Aborted)
        .deliver(dv(m(1, 0), 0))
        .deliver(dv(m(1, 0), 1))
        .build();
    assert!(atomicity_of(&clean).is_empty());
    // Aborted messages were never acknowledged: nothing is lost either.
    assert!(at_least_once(&clean).is_empty());
    let read = transaction(TxnOutcome::Aborted)
        .deliver(dv(m(0, 1), 1))
        .build();
    let vs = atomicity_of(&read);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(&vs[0], Invariant::Atomicity, Kind::AbortedRead, &[m(0, 1)]);
    assert_mentions(&vs[0], "aborted at");
    assert!(!vs[0].explanation.contains("the client was told"));
    assert_eq!(Kind::AbortedRead.name(), "aborted-read");
}

#[test]
fn an_aborted_read_names_what_the_client_was_told() {
    let reason = "TransactionRolledBackException: completion in doubt due to failover";
    let h = transaction(TxnOutcome::Aborted)
        .op(Op::Fail {
            msg: m(0, 1),
            reason: reason.to_string(),
        })
        .deliver(dv(m(0, 1), 1))
        .build();
    let vs = atomicity_of(&h);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_mentions(&vs[0], &format!("(the client was told: {reason})"));
}

#[test]
fn a_message_an_aborted_transaction_shares_with_a_committed_retry_is_no_aborted_read() {
    let h = transaction(TxnOutcome::Aborted)
        .op(Op::Transaction {
            txn: 2,
            msgs: vec![m(0, 0), m(0, 1)],
            outcome: TxnOutcome::Committed,
        })
        .deliver(dv(m(0, 0), 0))
        .deliver(dv(m(0, 1), 0))
        .build();
    assert!(atomicity_of(&h).is_empty(), "{:#?}", atomicity_of(&h));
}

#[test]
fn atomicity_is_selectable_and_a_transaction_prints_its_outcome() {
    assert_eq!("atomicity".parse::<Invariant>(), Ok(Invariant::Atomicity));
    assert!(Invariant::SELECTABLE.contains(&Invariant::Atomicity));
    let op = Op::Transaction {
        txn: 3,
        msgs: vec![m(0, 4), m(0, 5)],
        outcome: TxnOutcome::InDoubt,
    };
    assert_eq!(op.to_string(), "transaction 3 [p0:4, p0:5] in doubt");
}

// ---------------------------------------------------------------------------------------------
// the history's own questions: settled, counts, printing
// ---------------------------------------------------------------------------------------------

#[test]
fn a_history_is_settled_once_every_send_is_answered_and_every_ack_delivered() {
    // Acknowledged and delivered to its whole audience, and a failed send nobody must receive.
    let settled = B::new()
        .sent(m(0, 0), 0, &[0, 1])
        .send(m(0, 1), 0, &[0, 1])
        .fail(m(0, 1))
        .deliver(dv(m(0, 0), 0))
        .deliver(dv(m(0, 0), 1))
        .build();
    assert!(settled.settled());
    assert!(
        History::default().settled(),
        "nothing sent, nothing to wait for"
    );
    // An unanswered send, and an acknowledged message one group has not received yet.
    let unanswered = B::new().send(m(0, 0), 0, &[0]).build();
    assert!(!unanswered.settled());
    let undelivered = B::new()
        .sent(m(0, 0), 0, &[0, 1])
        .deliver(dv(m(0, 0), 0))
        .build();
    assert!(!undelivered.settled());
}

#[test]
fn a_history_counts_its_sends_acks_deliveries_and_atomic_units() {
    let h = multipart()
        .send(m(1, 0), 0, &[0])
        .deliver(dv(m(0, 0), 0))
        .deliver(dv(m(0, 0), 0).redelivered(true))
        .op(Op::Transaction {
            txn: 1,
            msgs: vec![m(1, 0)],
            outcome: TxnOutcome::Aborted,
        })
        .build();
    assert_eq!(h.sends(), 5);
    assert_eq!(h.acks(), 4);
    assert_eq!(h.deliveries(), 2);
    assert_eq!(h.atomic_units(), 2);
    assert_eq!(B::new().sent(m(0, 0), 0, &[0]).build().atomic_units(), 0);
}

#[test]
fn a_delivery_prints_its_redelivered_flag_only_when_set() {
    let flagged = dv(m(0, 1), 2).pos(7).redelivered(true).op();
    assert_eq!(
        flagged.to_string(),
        "deliver p0:1 to group 2 from position 7 (redelivered)"
    );
    assert_eq!(
        dv(m(0, 1), 2).redelivered(false).op().to_string(),
        "deliver p0:1 to group 2"
    );
    assert_eq!(dv(m(0, 1), 2).op().to_string(), "deliver p0:1 to group 2");
}

// ---------------------------------------------------------------------------------------------
// replay
// ---------------------------------------------------------------------------------------------

fn rewind(b: B, scope: u32, session: u64, from: u64, to: u64) -> B {
    b.op(Op::Rewind {
        group: 0,
        consumer: 0,
        scope,
        session,
        from,
        to,
    })
}

/// p0:0..3 sent and read at positions 0..3 of scope 0 by consumer 0 in session 1.
fn read_three() -> B {
    let mut b = B::new();
    for seq in 0..3 {
        b = b.sent(m(0, seq), 0, &[0]);
    }
    for seq in 0..3 {
        b = b.deliver(dv(m(0, seq), 0).pos(seq.into()).session(1));
    }
    b
}

fn replay_violations(h: &History) -> Vec<Violation> {
    check(Invariant::Replay, h, &EVERY)
}

#[test]
fn a_rewind_that_rereads_the_same_records_is_consistent_and_no_duplicate() {
    let mut b = rewind(read_three(), 0, 1, 3, 0);
    for seq in 0..3 {
        b = b.deliver(dv(m(0, seq), 0).pos(seq.into()).session(1));
    }
    let h = b
        .sent(m(0, 3), 0, &[0])
        .deliver(dv(m(0, 3), 0).pos(3).session(1))
        .build();
    assert!(
        replay_violations(&h).is_empty(),
        "{:#?}",
        replay_violations(&h)
    );
    // The re-reads are neither duplicates nor a rewind within the session.
    assert_clean(&h);
    assert!(h.settled());
    assert_eq!(h.rewinds(), 1);
}

#[test]
fn the_same_rereads_without_the_rewind_are_duplicates_and_a_nonmonotonic_poll() {
    // What makes a re-read a replay is the rewind before it.
    let mut b = read_three();
    for seq in 0..3 {
        b = b.deliver(dv(m(0, seq), 0).pos(seq.into()).session(1));
    }
    let vs = all_violations(&b.build());
    assert_eq!(of_kind(&vs, Kind::Duplicate).len(), 3, "{vs:#?}");
    assert_eq!(of_kind(&vs, Kind::NonmonotonicPoll).len(), 1, "{vs:#?}");
}

#[test]
fn a_position_read_twice_with_different_messages_is_inconsistent() {
    // The log was truncated under position 2 and a new record written there.
    let h = rewind(read_three(), 0, 1, 3, 0)
        .deliver(dv(m(0, 0), 0).pos(0).session(1))
        .deliver(dv(m(0, 1), 0).pos(1).session(1))
        .sent(m(1, 0), 0, &[0])
        .at(2500)
        .deliver(dv(m(1, 0), 0).pos(2).session(1))
        .build();
    let vs = replay_violations(&h);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(
        &vs[0],
        Invariant::Replay,
        Kind::InconsistentOffsets,
        &[m(0, 2), m(1, 0)],
    );
    assert_mentions(&vs[0], "position 2 of scope 0");
    assert_mentions(&vs[0], "2.500 s");
}

#[test]
fn inconsistent_offsets_need_no_rewind() {
    // A second consumer reads a different record at a position the first one read.
    let h = read_three()
        .sent(m(1, 0), 0, &[0])
        .deliver(dv(m(1, 0), 0).consumer(1).pos(1).session(2))
        .build();
    let vs = replay_violations(&h);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(
        &vs[0],
        Invariant::Replay,
        Kind::InconsistentOffsets,
        &[m(0, 1), m(1, 0)],
    );
    // Positions of different scopes are different positions.
    let h = read_three()
        .sent(m(1, 0), 1, &[0])
        .deliver(dv(m(1, 0), 0).scope(1).pos(1).session(1))
        .build();
    assert!(replay_violations(&h).is_empty());
}

#[test]
fn a_rewind_that_skips_a_record_it_had_read_is_a_replay_skip() {
    let h = rewind(read_three(), 0, 1, 3, 0)
        .deliver(dv(m(0, 0), 0).pos(0).session(1))
        .at(4000)
        .deliver(dv(m(0, 2), 0).pos(2).session(1))
        .build();
    let vs = replay_violations(&h);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(
        &vs[0],
        Invariant::Replay,
        Kind::ReplaySkip,
        &[m(0, 1), m(0, 2)],
    );
    assert_mentions(&vs[0], "without re-reading position 1");
    assert_mentions(&vs[0], "from position 3 to 0");
}

#[test]
fn a_replay_that_reads_on_past_a_record_it_had_read_is_a_replay_skip() {
    // Positions 1 and 2 vanished; the consumer re-read 0 and went on at 3.
    let h = rewind(read_three(), 0, 1, 3, 0)
        .deliver(dv(m(0, 0), 0).pos(0).session(1))
        .sent(m(0, 3), 0, &[0])
        .deliver(dv(m(0, 3), 0).pos(3).session(1))
        .build();
    let vs = replay_violations(&h);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(&vs[0], Invariant::Replay, Kind::ReplaySkip, &[m(0, 1)]);
    assert_mentions(&vs[0], "read on past it");
    // The same replay cut short by a new session is judged on what it re-read: nothing wrong.
    let h = rewind(read_three(), 0, 1, 3, 0)
        .deliver(dv(m(0, 0), 0).pos(0).session(1))
        .deliver(dv(m(0, 1), 0).pos(1).session(2))
        .build();
    assert!(replay_violations(&h).is_empty());
}

#[test]
fn a_rewind_that_reorders_is_replay_reordered() {
    let h = rewind(read_three(), 0, 1, 3, 0)
        .deliver(dv(m(0, 1), 0).pos(1).session(1))
        .deliver(dv(m(0, 0), 0).pos(0).session(1))
        .deliver(dv(m(0, 2), 0).pos(2).session(1))
        .build();
    let vs = replay_violations(&h);
    // Position 1 came first (skipping 0), then the replay went back to 0.
    assert_eq!(vs.len(), 2, "{vs:#?}");
    assert_violation(
        &vs[0],
        Invariant::Replay,
        Kind::ReplaySkip,
        &[m(0, 0), m(0, 1)],
    );
    assert_violation(
        &vs[1],
        Invariant::Replay,
        Kind::ReplayReordered,
        &[m(0, 1), m(0, 0)],
    );
    assert_mentions(&vs[1], "went back to position 0");
    // Reading the records in another order at the same positions rewrites the positions.
    let h = rewind(read_three(), 0, 1, 3, 0)
        .deliver(dv(m(0, 1), 0).pos(0).session(1))
        .deliver(dv(m(0, 0), 0).pos(1).session(1))
        .build();
    let vs = replay_violations(&h);
    assert_eq!(of_kind(&vs, Kind::InconsistentOffsets).len(), 2, "{vs:#?}");
}

#[test]
fn a_rewind_to_the_middle_rereads_from_there_and_records_read_by_others_count() {
    // Consumer 1 read position 0 in an earlier session; consumer 0 read 1 and 2, rewound to 1.
    let h = B::new()
        .sent(m(0, 0), 0, &[0])
        .sent(m(0, 1), 0, &[0])
        .deliver(dv(m(0, 0), 0).consumer(1).pos(0).session(1))
        .deliver(dv(m(0, 1), 0).pos(1).session(2))
        .op(Op::Rewind {
            group: 0,
            consumer: 0,
            scope: 0,
            session: 2,
            from: 2,
            to: 0,
        })
        .deliver(dv(m(0, 1), 0).pos(1).session(2))
        .build();
    let vs = replay_violations(&h);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(
        &vs[0],
        Invariant::Replay,
        Kind::ReplaySkip,
        &[m(0, 0), m(0, 1)],
    );
}

#[test]
fn a_new_session_in_another_scope_does_not_end_a_replay() {
    // RocketMQ keeps a session per queue: the consumer's delivery from another queue, in that
    // queue's own session, leaves the replay of scope 0 open, and its skip of position 1 counts.
    let h = rewind(read_three(), 0, 1, 3, 0)
        .deliver(dv(m(0, 0), 0).pos(0).session(1))
        .sent(m(1, 0), 1, &[0])
        .deliver(dv(m(1, 0), 0).scope(1).pos(0).session(2))
        .deliver(dv(m(0, 2), 0).pos(2).session(1))
        .build();
    let vs = replay_violations(&h);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(
        &vs[0],
        Invariant::Replay,
        Kind::ReplaySkip,
        &[m(0, 1), m(0, 2)],
    );
    // A new session in the replay's own scope still ends it, judged on what it re-read.
    let cut = rewind(read_three(), 0, 1, 3, 0)
        .deliver(dv(m(0, 0), 0).pos(0).session(1))
        .deliver(dv(m(0, 2), 0).pos(2).session(2))
        .build();
    assert!(
        replay_violations(&cut).is_empty(),
        "{:#?}",
        replay_violations(&cut)
    );
}

#[test]
fn a_replay_in_progress_is_not_settled() {
    let h = rewind(read_three(), 0, 1, 3, 0)
        .deliver(dv(m(0, 0), 0).pos(0).session(1))
        .build();
    assert!(!h.settled(), "the consumer has not read its way back");
    assert!(
        replay_violations(&h).is_empty(),
        "an unfinished replay is judged on what it read"
    );
    let again = rewind(
        rewind(read_three(), 0, 1, 3, 0).deliver(dv(m(0, 0), 0).pos(0).session(1)),
        0,
        1,
        1,
        0,
    )
    .deliver(dv(m(0, 0), 0).pos(0).session(1))
    .build();
    // Rewinding again ends the first replay, which never re-read positions 1 and 2.
    let vs = replay_violations(&again);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_violation(&vs[0], Invariant::Replay, Kind::ReplaySkip, &[m(0, 1)]);
    assert_mentions(&vs[0], "rewound again");
}

#[test]
fn replay_is_selectable_by_name() {
    assert_eq!("replay".parse::<Invariant>(), Ok(Invariant::Replay));
    assert!(Invariant::SELECTABLE.contains(&Invariant::Replay));
    assert_eq!(Kind::InconsistentOffsets.name(), "inconsistent-offsets");
    assert_eq!(Kind::ReplaySkip.name(), "replay-skip");
    assert_eq!(Kind::ReplayReordered.name(), "replay-reordered");
}
