//! DLedger (`enableDLegerCommitLog=true`, openmessaging/dledger 0.3.1.2 as RocketMQ 5.3 uses
//! it): each broker group is one Raft group whose log is the CommitLog. The leader elector
//! (`DLedgerLeaderElector`, `MemberState`), the entry pusher (`DLedgerEntryPusher`: one
//! `EntryDispatcher` per follower, the `EntryHandler`, the `QuorumAckChecker`), the flush
//! (`DLedgerMmapFileStore.FlushDataService`) and the broker's `DLedgerRoleChangeHandler`. See
//! the module doc of `rocketmq` for the mechanism.

use super::broker::{Broker, BrokerState};
use super::config::Version;
use super::protocol::{HeartbeatCode, Message, Push, RocketMsg, SendError, SendStatus, VoteResult};
use super::{exact, RocketOut, RocketTimer};
use stateright::actor::Id;
use std::collections::BTreeMap;
use std::time::Duration;

/// `heartBeatTimeIntervalMs`.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(2000);
/// `maxHeartBeatLeak`: heartbeat intervals without the leader (or, for a leader, without a
/// quorum of answers) before a new election.
pub const MAX_HEARTBEAT_LEAK: u32 = 3;
/// `minVoteIntervalMs`..`maxVoteIntervalMs`: when a candidate votes next.
const MIN_VOTE_INTERVAL: Duration = Duration::from_millis(300);
const MAX_VOTE_INTERVAL: Duration = Duration::from_millis(1000);
/// `voteLatch.await(2000 + random.nextInt(maxVoteIntervalMs))`.
const VOTE_WAIT: Duration = Duration::from_millis(2000);
/// `maxWaitAckTimeMs`: a put not acknowledged by a quorum this long fails
/// (`WAIT_QUORUM_ACK_TIMEOUT`).
pub const MAX_WAIT_ACK: Duration = Duration::from_millis(2500);
/// `flushFileInterval`: `FlushDataService` flushes the entry files this often.
pub const FLUSH_FILE_INTERVAL: Duration = Duration::from_millis(10);
/// `checkPointInterval`: the committed index is written this often.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(3000);
/// `maxPushTimeOutMs`: an APPEND without an answer this long is pushed again.
const MAX_PUSH_TIMEOUT: Duration = Duration::from_millis(1000);
/// `responseFuture.get(3, TimeUnit.SECONDS)` of a COMPARE or TRUNCATE.
const COMPARE_TIMEOUT: Duration = Duration::from_millis(3000);
/// `doCommit`: a COMMIT push at least this often.
const PUSH_COMMIT_INTERVAL: Duration = Duration::from_millis(1000);
/// `EntryDispatcher.doWork`'s sleep after an exception.
const DISPATCHER_SLEEP: Duration = Duration::from_millis(500);
/// The `StateMaintainer` loop's sleep.
const MAINTAIN: Duration = Duration::from_millis(10);
/// Entries per APPEND (the model's batch; DLedger pipelines single entries).
const PUSH_BATCH: u64 = 32;

/// `MemberState.Role`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Role {
    #[default]
    Candidate,
    Follower,
    Leader,
}

/// `VoteResponse.ParseResult` of the last vote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ParseResult {
    #[default]
    WaitToRevote,
    WaitToVoteNext,
    RevoteImmediately,
    Passed,
}

/// A candidate's vote in progress (`maintainAsCandidate`'s counters).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct VoteRound {
    pub term: u64,
    pub answered: u32,
    pub accepted: u32,
    pub not_ready: u32,
    pub bigger_ledger: u32,
    pub already_has_leader: bool,
    pub known_max: u64,
}

/// A leader's heartbeat round (`sendHeartbeats`' counters).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct BeatRound {
    pub term: u64,
    pub succ: u32,
    pub not_ready: u32,
    pub max_term: u64,
    pub inconsistent: bool,
}

/// An `EntryDispatcher`'s state for one follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dispatch {
    /// COMPARE from `compareIndex` (`None`: from the leader's end).
    Compare(Option<u64>),
    /// TRUNCATE at this index sent.
    Truncate(u64),
    /// APPEND from this index.
    Append(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dispatcher {
    pub state: Dispatch,
    /// The request waiting for its answer.
    pub in_flight: Option<u64>,
}

/// A broker's DLedger server, in memory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DLedgerState {
    pub role: Role,
    pub leader: Option<Id>,
    pub known_max_term: u64,
    pub need_increase: bool,
    pub last_parse: ParseResult,
    pub vote: Option<VoteRound>,
    pub beat: Option<BeatRound>,
    /// Leader: heartbeat rounds in a row without a quorum of answers.
    pub beat_fails: u32,
    /// `committedIndex`, as a count of entries.
    pub committed: u64,
    /// Leader: `peerWaterMarksByTerm` of the current term, as counts (the leader's own too).
    pub watermarks: BTreeMap<Id, u64>,
    pub dispatchers: BTreeMap<Id, Dispatcher>,
    pub flush_scheduled: bool,
    /// Numbers the leader's push requests.
    pub seq: u64,
}

fn vote_interval() -> std::ops::Range<Duration> {
    MIN_VOTE_INTERVAL..MAX_VOTE_INTERVAL
}

impl Broker {
    fn peers(&self) -> Vec<Id> {
        (0..1 + self.settings.slaves)
            .map(|i| self.settings.broker(self.group, i))
            .collect()
    }

    fn me(&self) -> Id {
        self.settings.broker(self.group, self.broker_id)
    }

    fn quorum(&self, n: u32) -> bool {
        2 * n > 1 + self.settings.slaves
    }

    fn dl<'a>(&self, s: &'a mut BrokerState) -> &'a mut DLedgerState {
        s.dl.as_mut().expect("a DLedger broker")
    }

    /// At start: the recovered ledger, its committed index from the checkpoint, and the
    /// elector as a candidate that votes at once (`nextTimeToRequestVote = -1`).
    pub(super) fn start_dledger(&self, s: &mut BrokerState, o: &mut RocketOut) {
        let end = s.disk.commitlog.end();
        s.dl = Some(DLedgerState {
            committed: s.disk.dledger.checkpoint.min(end),
            ..DLedgerState::default()
        });
        o.set_timer(RocketTimer::DlMaintain, exact(MAINTAIN));
        o.set_timer(RocketTimer::DlCheckpoint, exact(CHECKPOINT_INTERVAL));
    }

    /// `changeRoleToCandidate(term)`: `currTerm` waits for `nextTerm`; the broker becomes a
    /// slave (`DLedgerRoleChangeHandler`, CANDIDATE).
    fn to_candidate(&self, s: &mut BrokerState, term: u64, o: &mut RocketOut) {
        if term < s.disk.dledger.term {
            return;
        }
        let was = self.dl(s).role;
        let dl = self.dl(s);
        dl.known_max_term = dl.known_max_term.max(term);
        dl.role = Role::Candidate;
        dl.leader = None;
        dl.beat = None;
        dl.dispatchers.clear();
        if was != Role::Candidate && dl.vote.is_none() {
            o.set_timer(RocketTimer::DlMaintain, exact(MAINTAIN));
        }
        o.cancel_timer(RocketTimer::DlLeaderLost);
        if s.master {
            self.change_to_slave(s, o);
        }
    }

    fn to_follower(&self, s: &mut BrokerState, leader: Id, o: &mut RocketOut) {
        let dl = self.dl(s);
        dl.role = Role::Follower;
        dl.leader = Some(leader);
        dl.last_parse = ParseResult::WaitToRevote;
        dl.beat = None;
        dl.dispatchers.clear();
        o.set_timer(
            RocketTimer::DlLeaderLost,
            exact(HEARTBEAT_INTERVAL * MAX_HEARTBEAT_LEAK),
        );
        // FOLLOWER: `changeToSlave`, whatever the store's role was.
        self.change_to_slave(s, o);
    }

    fn to_leader(&self, s: &mut BrokerState, o: &mut RocketOut) {
        let me = self.me();
        let end = s.disk.commitlog.end();
        let peers = self.peers();
        let dl = self.dl(s);
        dl.role = Role::Leader;
        dl.leader = Some(me);
        dl.beat_fails = 0;
        dl.watermarks = peers.iter().map(|p| (*p, 0)).collect();
        dl.watermarks.insert(me, end);
        dl.dispatchers = peers
            .iter()
            .filter(|p| **p != me)
            .map(|p| {
                let d = Dispatcher {
                    state: Dispatch::Compare(None),
                    in_flight: None,
                };
                (*p, d)
            })
            .collect();
        o.set_timer(RocketTimer::DlHeartbeat, exact(Duration::from_millis(1)));
        o.set_timer(RocketTimer::DlCommit, exact(PUSH_COMMIT_INTERVAL));
        self.push_all(s, o);
        self.commit(s, o);
    }

    /// `DLedgerRoleChangeHandler.changeToSlave`: brokerId = selfId + 1, role SLAVE, a new
    /// registration. Puts waiting for their quorum are never answered (the QuorumAckChecker
    /// only runs on a leader).
    fn change_to_slave(&self, s: &mut BrokerState, o: &mut RocketOut) {
        s.master = false;
        s.puts.clear();
        self.register(s, o);
    }

    /// LEADER: once the ledger's end is committed and dispatched, `changeToMaster(SYNC_MASTER)`:
    /// brokerId 0, the special services (schedule, transactions) started, a registration.
    fn maybe_master(&self, s: &mut BrokerState, o: &mut RocketOut) {
        let end = s.disk.commitlog.end();
        let dl = s.dl.as_ref().expect("a DLedger broker");
        if dl.role != Role::Leader || s.master || dl.committed < end || s.cq.dispatched < end {
            return;
        }
        s.master = true;
        self.register(s, o);
        self.start_special_services(s, o);
    }

    /// `maintainAsCandidate`, when its `nextTimeToRequestVote` came.
    fn maintain_as_candidate(&self, s: &mut BrokerState, o: &mut RocketOut) {
        let dl = self.dl(s);
        if dl.role != Role::Candidate || dl.vote.is_some() {
            return;
        }
        if dl.last_parse == ParseResult::WaitToVoteNext || dl.need_increase {
            // `nextTerm`.
            let known = dl.known_max_term;
            dl.last_parse = ParseResult::WaitToRevote;
            let d = &mut s.disk.dledger;
            d.term = if known > d.term { known } else { d.term + 1 };
            d.voted_for = None;
            self.save(s, o);
        }
        let dl = self.dl(s);
        if dl.need_increase {
            dl.need_increase = false;
            o.set_timer(RocketTimer::DlMaintain, vote_interval());
            return;
        }
        let term = s.disk.dledger.term;
        let end_term = s.disk.dledger.end_term();
        let end = s.disk.commitlog.end();
        self.dl(s).vote = Some(VoteRound {
            term,
            known_max: term,
            ..VoteRound::default()
        });
        let me = self.me();
        for p in self.peers().into_iter().filter(|p| *p != me) {
            o.send(p, RocketMsg::DlVote { term, end_term, end });
        }
        let (t, result) = self.handle_vote(s, me, term, end_term, end, o);
        o.set_timer(RocketTimer::DlVoteWait, VOTE_WAIT..VOTE_WAIT + MAX_VOTE_INTERVAL);
        self.count_vote(s, term, t, result, o);
    }

    /// `handleVote`: the ledger check first, then the term, then the vote, persisted.
    fn handle_vote(
        &self,
        s: &mut BrokerState,
        from: Id,
        term: u64,
        end_term: u64,
        end: u64,
        o: &mut RocketOut,
    ) -> (u64, VoteResult) {
        let d = &s.disk.dledger;
        let (cur, my_end_term, my_end) = (d.term, d.end_term(), s.disk.commitlog.end());
        if end_term < my_end_term || (end_term == my_end_term && end < my_end) {
            return (cur, VoteResult::BiggerLedger);
        }
        if term < cur {
            return (cur, VoteResult::ExpiredTerm);
        }
        if term > cur {
            self.to_candidate(s, term, o);
            let dl = self.dl(s);
            dl.need_increase = true;
            if dl.vote.is_none() {
                o.set_timer(RocketTimer::DlMaintain, exact(MAINTAIN));
            }
            return (cur, VoteResult::TermNotReady);
        }
        match d.voted_for {
            Some(v) if v != from => {
                let leader = s.dl.as_ref().and_then(|dl| dl.leader);
                return match leader {
                    Some(_) => (cur, VoteResult::AlreadyHasLeader),
                    None => (cur, VoteResult::AlreadyVoted),
                };
            }
            _ => {}
        }
        if term < my_end_term {
            return (my_end_term, VoteResult::ExpiredTerm);
        }
        s.disk.dledger.voted_for = Some(from);
        self.save(s, o);
        (cur, VoteResult::Accept)
    }

    fn count_vote(&self, s: &mut BrokerState, round: u64, term: u64, result: VoteResult, o: &mut RocketOut) {
        let peers = 1 + self.settings.slaves;
        let Some(r) = self.dl(s).vote.as_mut().filter(|r| r.term == round) else {
            return;
        };
        r.answered += 1;
        match result {
            VoteResult::Accept => r.accepted += 1,
            VoteResult::AlreadyHasLeader => r.already_has_leader = true,
            VoteResult::ExpiredTerm => r.known_max = r.known_max.max(term),
            VoteResult::BiggerLedger => r.bigger_ledger += 1,
            VoteResult::TermNotReady => r.not_ready += 1,
            VoteResult::AlreadyVoted => {}
        }
        let (accepted, not_ready, leader, answered) =
            (r.accepted, r.not_ready, r.already_has_leader, r.answered);
        if leader
            || self.quorum(accepted)
            || self.quorum(accepted + not_ready)
            || answered == peers
        {
            self.parse_votes(s, o);
        }
    }

    /// The end of `maintainAsCandidate`: the vote's `ParseResult`.
    fn parse_votes(&self, s: &mut BrokerState, o: &mut RocketOut) {
        o.cancel_timer(RocketTimer::DlVoteWait);
        let Some(r) = self.dl(s).vote.take() else {
            return;
        };
        let still = self.dl(s).role == Role::Candidate && s.disk.dledger.term == r.term;
        let valid = r.answered;
        let (parse, next) = if r.known_max > r.term {
            (ParseResult::WaitToVoteNext, Some(Duration::ZERO))
        } else if r.already_has_leader {
            (
                ParseResult::WaitToRevote,
                Some(HEARTBEAT_INTERVAL * MAX_HEARTBEAT_LEAK),
            )
        } else if !self.quorum(valid) {
            (ParseResult::WaitToRevote, Some(Duration::ZERO))
        } else if !self.quorum(valid - r.bigger_ledger) {
            (ParseResult::WaitToRevote, Some(MAX_VOTE_INTERVAL))
        } else if self.quorum(r.accepted) {
            (ParseResult::Passed, None)
        } else if self.quorum(r.accepted + r.not_ready) {
            (ParseResult::RevoteImmediately, None)
        } else {
            (ParseResult::WaitToVoteNext, Some(Duration::ZERO))
        };
        if !still {
            return;
        }
        self.dl(s).last_parse = parse;
        if r.known_max > r.term {
            self.to_candidate(s, r.known_max, o);
        }
        match (parse, next) {
            (ParseResult::Passed, _) => self.to_leader(s, o),
            (_, Some(extra)) => {
                let i = vote_interval();
                o.set_timer(RocketTimer::DlMaintain, i.start + extra..i.end + extra);
            }
            (_, None) => o.set_timer(RocketTimer::DlMaintain, exact(MAINTAIN)),
        }
    }

    /// `handleHeartBeat`.
    fn handle_heartbeat(&self, s: &mut BrokerState, from: Id, term: u64, o: &mut RocketOut) -> HeartbeatCode {
        let cur = s.disk.dledger.term;
        if term < cur {
            return HeartbeatCode::ExpiredTerm;
        }
        if term > cur {
            self.to_candidate(s, term, o);
            let dl = self.dl(s);
            dl.need_increase = true;
            if dl.vote.is_none() {
                o.set_timer(RocketTimer::DlMaintain, exact(MAINTAIN));
            }
            return HeartbeatCode::TermNotReady;
        }
        match self.dl(s).leader {
            Some(l) if l == from => {
                o.set_timer(
                    RocketTimer::DlLeaderLost,
                    exact(HEARTBEAT_INTERVAL * MAX_HEARTBEAT_LEAK),
                );
                HeartbeatCode::Success
            }
            None => {
                self.to_follower(s, from, o);
                HeartbeatCode::Success
            }
            Some(_) => HeartbeatCode::InconsistentLeader,
        }
    }

    /// A leader's heartbeat tick: the last round's outcome (`sendHeartbeats`' end), then the
    /// next round.
    fn heartbeat_tick(&self, s: &mut BrokerState, o: &mut RocketOut) {
        let term = s.disk.dledger.term;
        if self.dl(s).role != Role::Leader {
            return;
        }
        if let Some(b) = self.dl(s).beat.take() {
            if b.max_term > b.term {
                self.to_candidate(s, b.max_term, o);
                return;
            }
            if self.quorum(b.succ) {
                self.dl(s).beat_fails = 0;
            } else if self.quorum(b.succ + b.not_ready) {
                // `lastSendHeartBeatTime = -1`: the next round at once.
            } else if b.inconsistent {
                self.to_candidate(s, term, o);
                return;
            } else {
                let dl = self.dl(s);
                dl.beat_fails += 1;
                if dl.beat_fails >= MAX_HEARTBEAT_LEAK {
                    self.to_candidate(s, term, o);
                    return;
                }
            }
        }
        self.dl(s).beat = Some(BeatRound {
            term,
            succ: 1,
            ..BeatRound::default()
        });
        let me = self.me();
        for p in self.peers().into_iter().filter(|p| *p != me) {
            o.send(p, RocketMsg::DlHeartbeat { term });
        }
        o.set_timer(RocketTimer::DlHeartbeat, exact(HEARTBEAT_INTERVAL));
    }

    /// Sends each idle dispatcher's next push.
    pub(super) fn push_all(&self, s: &mut BrokerState, o: &mut RocketOut) {
        let ids: Vec<Id> = self.dl(s).dispatchers.keys().copied().collect();
        for p in ids {
            self.push(s, p, o);
        }
    }

    fn entry(&self, s: &BrokerState, at: u64) -> (u64, Message) {
        let term = s.disk.dledger.term_at(at).expect("below the end");
        (term, *s.disk.commitlog.get(at).expect("below the end"))
    }

    fn push(&self, s: &mut BrokerState, peer: Id, o: &mut RocketOut) {
        let end = s.disk.commitlog.end();
        let term = s.disk.dledger.term;
        let commit = self.dl(s).committed;
        let Some(d) = self.dl(s).dispatchers.get(&peer).copied() else {
            return;
        };
        if d.in_flight.is_some() {
            return;
        }
        let (push, timeout) = match d.state {
            Dispatch::Compare(_) if end == 0 => return,
            Dispatch::Compare(ci) => {
                let index = ci.filter(|i| *i < end).unwrap_or(end - 1);
                self.dl(s).dispatchers.insert(peer, Dispatcher {
                    state: Dispatch::Compare(Some(index)),
                    in_flight: None,
                });
                let (t, msg) = self.entry(s, index);
                (Push::Compare { index, term: t, msg }, COMPARE_TIMEOUT)
            }
            Dispatch::Truncate(index) => {
                let (t, msg) = self.entry(s, index);
                (Push::Truncate { index, term: t, msg }, COMPARE_TIMEOUT)
            }
            Dispatch::Append(next) if next >= end => return,
            Dispatch::Append(from) => {
                let entries = (from..end.min(from + PUSH_BATCH))
                    .map(|i| self.entry(s, i))
                    .collect();
                (Push::Append { from, entries }, MAX_PUSH_TIMEOUT)
            }
        };
        let dl = self.dl(s);
        dl.seq += 1;
        let seq = dl.seq;
        if let Some(d) = dl.dispatchers.get_mut(&peer) {
            d.in_flight = Some(seq);
        }
        o.send(peer, RocketMsg::DlPush {
            term,
            seq,
            push,
            commit,
        });
        o.set_timer(RocketTimer::DlPushTimeout(peer), exact(timeout));
    }

    /// The leader's dispatcher for `peer` heard back.
    fn push_result(&self, s: &mut BrokerState, peer: Id, seq: u64, ok: bool, fend: u64, o: &mut RocketOut) {
        let Some(d) = self.dl(s).dispatchers.get(&peer).copied().filter(|d| d.in_flight == Some(seq)) else {
            return;
        };
        o.cancel_timer(RocketTimer::DlPushTimeout(peer));
        let mut matched = None;
        let state = match d.state {
            Dispatch::Compare(ci) => {
                let ci = ci.expect("a compare was sent");
                if ok && ci + 1 == fend {
                    matched = Some(ci + 1);
                    Dispatch::Append(ci + 1)
                } else if ok {
                    Dispatch::Truncate(ci)
                } else if fend == 0 || ci == 0 {
                    // The follower's entries do not intersect the leader's, or the compare
                    // ran past the first entry: truncate at the ledger's beginning.
                    Dispatch::Truncate(0)
                } else if ci >= fend {
                    Dispatch::Compare(Some(fend - 1))
                } else {
                    Dispatch::Compare(Some(ci - 1))
                }
            }
            Dispatch::Truncate(ti) if ok => {
                matched = Some(ti + 1);
                Dispatch::Append(ti + 1)
            }
            Dispatch::Append(_) if ok => {
                matched = Some(fend);
                Dispatch::Append(fend)
            }
            Dispatch::Append(_) => Dispatch::Compare(None),
            Dispatch::Truncate(_) => {
                // A failed TRUNCATE throws in `doTruncate`: the dispatcher goes back to COMPARE
                // after `doWork`'s 500 ms sleep (a request that is never sent stands for it).
                let dl = self.dl(s);
                dl.seq += 1;
                let sleep = dl.seq;
                dl.dispatchers.insert(peer, Dispatcher {
                    state: Dispatch::Compare(None),
                    in_flight: Some(sleep),
                });
                o.set_timer(RocketTimer::DlPushTimeout(peer), exact(DISPATCHER_SLEEP));
                return;
            }
        };
        let dl = self.dl(s);
        dl.dispatchers.insert(peer, Dispatcher {
            state,
            in_flight: None,
        });
        if let Some(m) = matched {
            dl.watermarks.insert(peer, m);
        }
        self.push(s, peer, o);
        self.commit(s, o);
    }

    /// `QuorumAckChecker`: the median watermark is committed (0.3.1.2's `updateCommittedIndex`
    /// does not ask that its entry be of the current term), puts up to it answered SEND_OK.
    fn commit(&self, s: &mut BrokerState, o: &mut RocketOut) {
        let me = self.me();
        let end = s.disk.commitlog.end();
        let dl = self.dl(s);
        if dl.role != Role::Leader {
            return;
        }
        dl.watermarks.insert(me, end);
        let mut marks: Vec<u64> = dl.watermarks.values().copied().collect();
        marks.sort_by(|a, b| b.cmp(a));
        let quorum = marks[marks.len() / 2].min(end);
        if quorum > dl.committed {
            dl.committed = quorum;
            self.appended(s, o);
        }
        let committed = self.dl(s).committed;
        let done: Vec<u64> = s.puts.range(..=committed).map(|(e, _)| *e).collect();
        for e in done {
            let p = s.puts.remove(&e).expect("listed");
            o.cancel_timer(RocketTimer::DlAckTimeout(e));
            if p.back {
                o.send(p.src, RocketMsg::SendBackResult { request: p.request });
                continue;
            }
            o.send(
                p.src,
                RocketMsg::SendResult {
                    request: p.request,
                    status: SendStatus::SendOk,
                    offset: e - 1,
                },
            );
        }
        self.maybe_master(s, o);
    }

    /// A follower's `EntryHandler`: COMPARE answers whatever the role; TRUNCATE and APPEND
    /// need a follower of the sender in the request's term (`appendAsFollower`,
    /// `truncate`'s preconditions), otherwise INCONSISTENT_STATE.
    #[allow(clippy::too_many_arguments)]
    fn handle_push(
        &self,
        s: &mut BrokerState,
        from: Id,
        term: u64,
        seq: u64,
        push: Push,
        commit: u64,
        o: &mut RocketOut,
    ) {
        let dl = s.dl.as_ref().expect("a DLedger broker");
        let following =
            dl.role == Role::Follower && dl.leader == Some(from) && term == s.disk.dledger.term;
        if push == Push::Commit {
            // One-way.
            if following {
                self.follower_commit(s, commit, o);
            }
            return;
        }
        // COMPARE changes nothing, not even the committed index (`handleDoCompare`): what
        // follows the compared entry may still be another leader's.
        let compare = matches!(push, Push::Compare { .. });
        let ok = match push {
            Push::Compare { index, term, msg } => {
                s.disk.dledger.term_at(index) == Some(term)
                    && s.disk.commitlog.get(index) == Some(&msg)
            }
            Push::Truncate { index, term, msg } if following && index <= s.disk.commitlog.end() => {
                s.disk.commitlog.truncate(index);
                s.disk.dledger.truncate(index);
                s.disk.commitlog.append(msg);
                s.disk.dledger.terms.push_back_mut(term);
                if s.cq.dispatched > index {
                    s.cq.truncate(index);
                }
                let dl = self.dl(s);
                dl.committed = dl.committed.min(index);
                self.save(s, o);
                true
            }
            Push::Append { from, entries } if following && from == s.disk.commitlog.end() => {
                for (t, m) in entries {
                    s.disk.commitlog.append(m);
                    s.disk.dledger.terms.push_back_mut(t);
                }
                self.save(s, o);
                true
            }
            _ => false,
        };
        if ok && following && !compare {
            self.follower_commit(s, commit, o);
        }
        o.send(
            from,
            RocketMsg::DlPushResult {
                term: s.disk.dledger.term,
                seq,
                ok,
                end: s.disk.commitlog.end(),
            },
        );
    }

    /// `followerUpdateCommittedIndex(min(ledgerEnd, commitIndex))`.
    fn follower_commit(&self, s: &mut BrokerState, commit: u64, o: &mut RocketOut) {
        let end = s.disk.commitlog.end();
        let dl = self.dl(s);
        let c = commit.min(end);
        if c > dl.committed {
            dl.committed = c;
        }
        self.appended(s, o);
    }

    /// A put on the DLedger leader (`DLedgerCommitLog.asyncPutMessage` → `handleAppend`):
    /// appended to the ledger in the current term, answered once a quorum has it, or failed
    /// after `maxWaitAckTimeMs`.
    pub(super) fn dl_put(&self, s: &mut BrokerState, end: u64, put: super::Put, o: &mut RocketOut) {
        s.puts.insert(end, put);
        o.set_timer(RocketTimer::DlAckTimeout(end), exact(MAX_WAIT_ACK));
        self.push_all(s, o);
        self.commit(s, o);
    }

    /// After an append: the flush service is due within `flushFileInterval`.
    pub(super) fn dl_appended(&self, s: &mut BrokerState, o: &mut RocketOut) {
        let dirty = s.disk.commitlog.dirty() > 0;
        let dl = self.dl(s);
        if dirty && !dl.flush_scheduled {
            dl.flush_scheduled = true;
            o.set_timer(
                RocketTimer::DlFlush,
                Duration::from_millis(1)..FLUSH_FILE_INTERVAL + Duration::from_millis(1),
            );
        }
    }

    pub(super) fn dl_on_msg(&self, s: &mut BrokerState, src: Id, msg: RocketMsg, o: &mut RocketOut) {
        match msg {
            RocketMsg::DlVote { term, end_term, end } => {
                let (t, result) = self.handle_vote(s, src, term, end_term, end, o);
                o.send(
                    src,
                    RocketMsg::DlVoteResult {
                        round: term,
                        term: t,
                        result,
                    },
                );
            }
            RocketMsg::DlVoteResult {
                round,
                term,
                result,
            } => self.count_vote(s, round, term, result, o),
            RocketMsg::DlHeartbeat { term } => {
                let code = self.handle_heartbeat(s, src, term, o);
                let term = s.disk.dledger.term;
                o.send(src, RocketMsg::DlHeartbeatResult { term, code });
            }
            RocketMsg::DlHeartbeatResult { term, code } => {
                let cur = s.disk.dledger.term;
                if let Some(b) = self.dl(s).beat.as_mut().filter(|b| b.term == cur) {
                    match code {
                        HeartbeatCode::Success => b.succ += 1,
                        HeartbeatCode::ExpiredTerm => b.max_term = b.max_term.max(term),
                        HeartbeatCode::InconsistentLeader => b.inconsistent = true,
                        HeartbeatCode::TermNotReady => b.not_ready += 1,
                    }
                }
            }
            RocketMsg::DlPush {
                term,
                seq,
                push,
                commit,
            } => self.handle_push(s, src, term, seq, push, commit, o),
            RocketMsg::DlPushResult { term, seq, ok, end } => {
                let leading = self.dl(s).role == Role::Leader;
                if leading && term == s.disk.dledger.term {
                    self.push_result(s, src, seq, ok, end, o);
                }
            }
            // `DefaultMessageStore.checkStoreStatus`: a slave's store refuses puts.
            RocketMsg::SendMessage { request, .. } => o.send(
                src,
                RocketMsg::SendError {
                    request,
                    code: SendError::ServiceNotAvailable,
                },
            ),
            RocketMsg::Disconnected => {
                let dl = self.dl(s);
                if let Some(d) = dl.dispatchers.get_mut(&src).filter(|d| d.in_flight.is_some()) {
                    d.in_flight = None;
                    d.state = Dispatch::Compare(None);
                    o.cancel_timer(RocketTimer::DlPushTimeout(src));
                }
            }
            _ => {}
        }
    }

    /// DLedger's timers; false if `timer` is not one.
    pub(super) fn dl_on_timeout(&self, s: &mut BrokerState, timer: &RocketTimer, o: &mut RocketOut) -> bool {
        match timer {
            RocketTimer::DlMaintain => self.maintain_as_candidate(s, o),
            RocketTimer::DlVoteWait => self.parse_votes(s, o),
            RocketTimer::DlHeartbeat => self.heartbeat_tick(s, o),
            RocketTimer::DlLeaderLost => {
                if self.dl(s).role == Role::Follower {
                    let term = s.disk.dledger.term;
                    self.to_candidate(s, term, o);
                }
            }
            RocketTimer::DlFlush => {
                self.dl(s).flush_scheduled = false;
                if s.disk.commitlog.dirty() > 0 {
                    s.disk.commitlog.flush();
                    self.save(s, o);
                }
            }
            RocketTimer::DlCheckpoint => {
                let committed = self.dl(s).committed;
                if s.disk.dledger.checkpoint != committed {
                    s.disk.dledger.checkpoint = committed;
                    self.save(s, o);
                }
                o.set_timer(RocketTimer::DlCheckpoint, exact(CHECKPOINT_INTERVAL));
            }
            RocketTimer::DlPushTimeout(peer) => {
                let dl = self.dl(s);
                if let Some(d) = dl.dispatchers.get_mut(peer).filter(|d| d.in_flight.is_some()) {
                    d.in_flight = None;
                    if let Dispatch::Append(_) = d.state {
                        // Pushed again from what the follower acknowledged.
                        let mark = dl.watermarks.get(peer).copied().unwrap_or(0);
                        d.state = Dispatch::Append(mark);
                    } else {
                        d.state = Dispatch::Compare(None);
                    }
                    self.push(s, *peer, o);
                }
            }
            RocketTimer::DlCommit => {
                if self.dl(s).role == Role::Leader {
                    let term = s.disk.dledger.term;
                    let commit = self.dl(s).committed;
                    let appending: Vec<Id> = self
                        .dl(s)
                        .dispatchers
                        .iter()
                        .filter(|(_, d)| matches!(d.state, Dispatch::Append(_)) && d.in_flight.is_none())
                        .map(|(p, _)| *p)
                        .collect();
                    for p in appending {
                        o.send(p, RocketMsg::DlPush {
                            term,
                            seq: 0,
                            push: Push::Commit,
                            commit,
                        });
                    }
                    o.set_timer(RocketTimer::DlCommit, exact(PUSH_COMMIT_INTERVAL));
                }
            }
            RocketTimer::DlAckTimeout(end) => {
                if let Some(p) = s.puts.remove(end).filter(|p| !p.back) {
                    let code = match self.settings.version {
                        Version::V4_9 => SendError::BrokerBusy,
                        Version::V5_3 => SendError::InSyncReplicasNotEnough,
                    };
                    o.send(
                        p.src,
                        RocketMsg::SendError {
                            request: p.request,
                            code,
                        },
                    );
                }
            }
            _ => return false,
        }
        true
    }
}
