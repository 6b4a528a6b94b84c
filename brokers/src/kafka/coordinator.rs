//! The transaction coordinator (KIP-98), played by the controller: one `TransactionMetadata`
//! per `transactional.id`, the state machine of `TransactionCoordinator` and
//! `TransactionStateManager`, and the markers it has the partitions' leaders write
//! (`TransactionMarkerChannelManager`).
//!
//! Its own log (`__transaction_state`) is taken as reliable infrastructure, as the controller's
//! is: the coordinator never fails over, and what it decided is never lost. What is modelled is
//! the protocol around it:
//!
//! - `InitProducerId` with a `transactional.id`: the first gives a producer id at epoch 0; each
//!   later one bumps the epoch, which fences every older incarnation. An open transaction is
//!   aborted under the bumped epoch first, and the producer is told `CONCURRENT_TRANSACTIONS`
//!   until its markers are written (`handleInitProducerId`, `prepareFenceProducerEpoch`). With
//!   the current id and epoch (KIP-360) it bumps the epoch of a producer whose transaction failed.
//! - `AddPartitionsToTxn` puts a partition in the transaction (state `Ongoing`); while the last
//!   transaction's markers are still being written it answers `CONCURRENT_TRANSACTIONS`. With
//!   `verifyOnly` a leader asks whether a partition is in the producer's transaction
//!   (`handleVerifyPartitionsInTransaction`, KIP-890 part 1).
//! - `EndTxn` writes `PrepareCommit` or `PrepareAbort` and answers at once; the markers follow,
//!   and once every partition's leader wrote its marker the transaction is `CompleteCommit` or
//!   `CompleteAbort`. With KIP-890 part 2 (`version=4.1`, transaction version 2) the epoch is
//!   bumped at `PrepareCommit`/`PrepareAbort` (`TransactionMetadata.prepareAbortOrCommit`): the
//!   markers carry the new epoch and the producer learns it from the answer.
//! - One marker request at a time per partition: a marker is asked again only of a new leader
//!   (or a new leader epoch), after an error, or after the leader's connection was reset.

use super::controller::{Controller, ControllerState};
use super::log::{LeaderEpoch, TxnResult};
use super::protocol::{ErrorCode, KafkaMsg, Partition};
use super::{exact, KafkaOut, KafkaTimer, FETCH_BACKOFF};
use stateright::actor::Id;
use std::collections::{BTreeMap, BTreeSet};

/// `TransactionState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    fn preparing(self) -> Option<TxnResult> {
        match self {
            TxnState::PrepareCommit => Some(TxnResult::Commit),
            TxnState::PrepareAbort => Some(TxnResult::Abort),
            _ => None,
        }
    }

    /// The result this state has decided, prepared or complete.
    fn decided(self) -> Option<TxnResult> {
        match self {
            TxnState::PrepareCommit | TxnState::CompleteCommit => Some(TxnResult::Commit),
            TxnState::PrepareAbort | TxnState::CompleteAbort => Some(TxnResult::Abort),
            _ => None,
        }
    }
}

/// `TransactionMetadata` of one `transactional.id`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TxnMetadata {
    pub producer_id: u32,
    pub epoch: u16,
    pub state: TxnState,
    pub partitions: BTreeSet<Partition>,
    /// Counts the transaction ends, so a marker answer is matched to its end.
    pub round: u64,
    /// While preparing: the partitions whose marker is not written yet, each with the leader
    /// asked to write it and its leader epoch (`None`: to be asked).
    pub markers: BTreeMap<Partition, Option<(Id, LeaderEpoch)>>,
}

impl Controller {
    /// Handles the transaction coordinator's requests and answers.
    pub(super) fn on_txn_msg(
        &self,
        s: &mut ControllerState,
        src: Id,
        msg: KafkaMsg,
        o: &mut KafkaOut,
    ) {
        match msg {
            KafkaMsg::InitProducerId {
                transactional_id: Some(t),
                producer,
            } => {
                let reply = self.init_producer_id(s, t, producer, o);
                o.send(src, reply);
            }
            KafkaMsg::AddPartitionsToTxn {
                transactional_id,
                producer_id,
                epoch,
                partition,
                verify_only,
            } => {
                let error = match s.transactions.get_mut(&transactional_id) {
                    None => Some(ErrorCode::InvalidTxnState),
                    Some(m) if m.producer_id != producer_id || m.epoch != epoch => {
                        Some(ErrorCode::ProducerFenced)
                    }
                    Some(m) if m.state.preparing().is_some() => {
                        Some(ErrorCode::ConcurrentTransactions)
                    }
                    Some(m) if verify_only => (!m.partitions.contains(&partition))
                        .then_some(ErrorCode::InvalidTxnState),
                    Some(m) => {
                        m.state = TxnState::Ongoing;
                        m.partitions.insert(partition);
                        None
                    }
                };
                o.send(
                    src,
                    KafkaMsg::AddPartitionsToTxnResponse {
                        transactional_id,
                        partition,
                        verify_only,
                        error,
                    },
                );
            }
            KafkaMsg::EndTxn {
                transactional_id,
                producer_id,
                epoch,
                result,
            } => {
                let reply = self.end_txn(s, transactional_id, producer_id, epoch, result, o);
                o.send(src, reply);
            }
            KafkaMsg::WriteTxnMarkersResponse {
                transactional_id,
                partition,
                round,
                error,
            } => {
                let Some(m) = s.transactions.get_mut(&transactional_id) else {
                    return;
                };
                let asked = m.markers.get(&partition).copied().flatten();
                if m.round != round || asked.map(|(b, _)| b) != Some(src) {
                    return; // an abandoned request's answer
                }
                if error.is_some() {
                    m.markers.insert(partition, None);
                    o.set_timer(
                        KafkaTimer::TxnMarkerRetry(transactional_id),
                        exact(FETCH_BACKOFF),
                    );
                    return;
                }
                m.markers.remove(&partition);
                complete_if_written(m);
            }
            KafkaMsg::Disconnected => {
                // The broker's process died: the marker requests it held are gone.
                for (t, m) in s.transactions.iter_mut() {
                    let mut lost = false;
                    for target in m.markers.values_mut() {
                        if target.is_some_and(|(b, _)| b == src) {
                            *target = None;
                            lost = true;
                        }
                    }
                    if lost {
                        o.set_timer(KafkaTimer::TxnMarkerRetry(*t), exact(FETCH_BACKOFF));
                    }
                }
            }
            _ => {}
        }
    }

    fn init_producer_id(
        &self,
        s: &mut ControllerState,
        t: u32,
        producer: Option<(u32, u16)>,
        o: &mut KafkaOut,
    ) -> KafkaMsg {
        let reply = |producer_id, epoch, error| KafkaMsg::InitProducerIdResponse {
            producer_id,
            epoch,
            error,
        };
        let Some(m) = s.transactions.get_mut(&t) else {
            let producer_id = s.next_producer_id;
            s.next_producer_id += 1 << 16;
            s.transactions.insert(
                t,
                TxnMetadata {
                    producer_id,
                    epoch: 0,
                    state: TxnState::Empty,
                    partitions: BTreeSet::new(),
                    round: 0,
                    markers: BTreeMap::new(),
                },
            );
            return reply(producer_id, 0, None);
        };
        if producer.is_some_and(|p| p != (m.producer_id, m.epoch)) {
            return reply(m.producer_id, m.epoch, Some(ErrorCode::ProducerFenced));
        }
        match m.state {
            TxnState::Ongoing => {
                // Fence the old epoch and abort its transaction under the new one.
                m.epoch += 1;
                self.prepare(s, t, TxnResult::Abort, o);
                let m = &s.transactions[&t];
                reply(m.producer_id, m.epoch, Some(ErrorCode::ConcurrentTransactions))
            }
            TxnState::PrepareCommit | TxnState::PrepareAbort => reply(
                m.producer_id,
                m.epoch,
                Some(ErrorCode::ConcurrentTransactions),
            ),
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                m.epoch += 1;
                reply(m.producer_id, m.epoch, None)
            }
        }
    }

    fn end_txn(
        &self,
        s: &mut ControllerState,
        t: u32,
        producer_id: u32,
        epoch: u16,
        result: TxnResult,
        o: &mut KafkaOut,
    ) -> KafkaMsg {
        let reply = |epoch, error| KafkaMsg::EndTxnResponse { epoch, error };
        let Some(m) = s.transactions.get(&t) else {
            return reply(epoch, Some(ErrorCode::InvalidTxnState));
        };
        if m.producer_id != producer_id {
            return reply(epoch, Some(ErrorCode::ProducerFenced));
        }
        // A retried EndTxn of the transaction already decided: its epoch is the current one,
        // or with the epoch bumped per transaction the one before.
        let bumps = self.settings.version.epoch_bump_per_transaction();
        let retried_epoch = if bumps { epoch + 1 } else { epoch };
        if retried_epoch == m.epoch && m.state.decided() == Some(result) {
            return reply(m.epoch, None);
        }
        if epoch != m.epoch {
            return reply(epoch, Some(ErrorCode::ProducerFenced));
        }
        if m.state != TxnState::Ongoing {
            return reply(epoch, Some(ErrorCode::InvalidTxnState));
        }
        if bumps {
            s.transactions.get_mut(&t).expect("found above").epoch += 1;
        }
        self.prepare(s, t, result, o);
        reply(s.transactions[&t].epoch, None)
    }

    /// `PrepareCommit` or `PrepareAbort`, then the markers.
    fn prepare(&self, s: &mut ControllerState, t: u32, result: TxnResult, o: &mut KafkaOut) {
        let m = s.transactions.get_mut(&t).expect("known transactional.id");
        m.state = match result {
            TxnResult::Commit => TxnState::PrepareCommit,
            TxnResult::Abort => TxnState::PrepareAbort,
        };
        m.round += 1;
        m.markers = m.partitions.iter().map(|p| (*p, None)).collect();
        complete_if_written(m);
        self.send_markers(s, o);
    }

    /// Asks each partition's current leader for the markers not written yet, unless it was
    /// asked already.
    pub(super) fn send_markers(&self, s: &mut ControllerState, o: &mut KafkaOut) {
        for (t, m) in s.transactions.iter_mut() {
            let Some(result) = m.state.preparing() else {
                continue;
            };
            for (p, target) in m.markers.iter_mut() {
                let ps = &s.partitions[*p as usize];
                let leader = ps.leader.map(|l| (l, ps.leader_epoch));
                if *target == leader {
                    continue;
                }
                *target = leader;
                if let Some((l, _)) = leader {
                    o.send(
                        l,
                        KafkaMsg::WriteTxnMarkers {
                            transactional_id: *t,
                            producer_id: m.producer_id,
                            epoch: m.epoch,
                            partition: *p,
                            result,
                            round: m.round,
                        },
                    );
                }
            }
        }
    }
}

/// Once every marker is written the transaction is complete, and its partitions forgotten.
fn complete_if_written(m: &mut TxnMetadata) {
    if !m.markers.is_empty() {
        return;
    }
    match m.state {
        TxnState::PrepareCommit => m.state = TxnState::CompleteCommit,
        TxnState::PrepareAbort => m.state = TxnState::CompleteAbort,
        _ => return,
    }
    m.partitions.clear();
}
