//! Share sessions (KIP-932), after Kafka's `ShareSessionCache` and
//! `SharePartitionManager.newContext`: a share consumer's ShareFetch requests name only what
//! changed since its previous one, and the broker keeps the rest per (group, member).
//!
//! - Epoch 0 opens a session (replacing one the member had) with the request's partitions; it may
//!   not carry acknowledgements (INVALID_REQUEST). Past `group.share.max.share.sessions`,
//!   SHARE_SESSION_LIMIT_REACHED.
//! - A positive epoch continues the session: it must be the epoch the broker expects next
//!   (INVALID_SHARE_SESSION_EPOCH otherwise, SHARE_SESSION_NOT_FOUND without a session); the
//!   request's partitions join it, its forgotten ones leave, and the expected epoch moves on
//!   (after i32::MAX comes 1).
//! - Epoch -1 is the last request of a session: acknowledgements only; the session then closes
//!   and the member's remaining acquisitions are released.
//! - A session also ends with the connection that opened it.
//!
//! ShareAcknowledge requests ride the same session and move its epoch too (epoch 0 is refused).

use std::collections::HashMap;

use indexmap::IndexSet;
use uuid::Uuid;

use crate::protocol::errors::{
    self, INVALID_SHARE_SESSION_EPOCH, SHARE_SESSION_LIMIT_REACHED, SHARE_SESSION_NOT_FOUND,
};

/// (topic id, partition)
pub type TopicIdPartition = (Uuid, i32);

pub const INITIAL_EPOCH: i32 = 0;
pub const FINAL_EPOCH: i32 = -1;

/// ShareRequestMetadata.nextEpoch.
pub fn next_epoch(epoch: i32) -> i32 {
    match epoch {
        e if e < 0 => FINAL_EPOCH,
        i32::MAX => 1,
        e => e + 1,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareSession {
    /// The epoch the next request must carry.
    pub epoch: i32,
    pub partitions: IndexSet<TopicIdPartition>,
    /// The connection that opened it.
    pub connection_id: u64,
}

/// What a ShareFetch works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareFetchContext {
    /// A new or continued session: fetch from these partitions.
    Session(Vec<TopicIdPartition>),
    /// The closing request (epoch -1): acknowledge, fetch nothing, then `close`.
    Final,
}

#[derive(Debug, Default)]
pub struct ShareSessionCache {
    max_sessions: usize,
    sessions: HashMap<(String, String), ShareSession>,
}

impl ShareSessionCache {
    /// group.share.max.share.sessions
    pub fn new(max_sessions: usize) -> ShareSessionCache {
        ShareSessionCache {
            max_sessions,
            sessions: HashMap::new(),
        }
    }

    pub fn get(&self, group_id: &str, member_id: &str) -> Option<&ShareSession> {
        self.sessions
            .get(&(group_id.to_string(), member_id.to_string()))
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// SharePartitionManager.newContext for one ShareFetch. A replaced session (epoch 0 while
    /// one was open) is returned beside the context: what its member held must be released.
    #[allow(clippy::too_many_arguments)]
    pub fn new_context(
        &mut self,
        group_id: &str,
        member_id: &str,
        epoch: i32,
        fetch: &[TopicIdPartition],
        forget: &[TopicIdPartition],
        has_acknowledgements: bool,
        connection_id: u64,
    ) -> Result<(ShareFetchContext, Option<ShareSession>), i16> {
        let key = (group_id.to_string(), member_id.to_string());
        match epoch {
            FINAL_EPOCH => {
                if !self.sessions.contains_key(&key) {
                    return Err(SHARE_SESSION_NOT_FOUND);
                }
                Ok((ShareFetchContext::Final, None))
            }
            INITIAL_EPOCH => {
                if has_acknowledgements {
                    return Err(errors::INVALID_REQUEST);
                }
                // Kafka removes the old session, then checks the limit.
                if !self.sessions.contains_key(&key) && self.sessions.len() >= self.max_sessions {
                    return Err(SHARE_SESSION_LIMIT_REACHED);
                }
                let replaced = self.sessions.remove(&key);
                let partitions: IndexSet<TopicIdPartition> = fetch.iter().copied().collect();
                let list = partitions.iter().copied().collect();
                self.sessions.insert(
                    key,
                    ShareSession {
                        epoch: next_epoch(INITIAL_EPOCH),
                        partitions,
                        connection_id,
                    },
                );
                Ok((ShareFetchContext::Session(list), replaced))
            }
            _ => {
                let session = self.continue_session(&key, epoch)?;
                for tp in forget {
                    session.partitions.shift_remove(tp);
                }
                session.partitions.extend(fetch.iter().copied());
                let list = session.partitions.iter().copied().collect();
                Ok((ShareFetchContext::Session(list), None))
            }
        }
    }

    /// SharePartitionManager.acknowledgeSessionUpdate for one ShareAcknowledge.
    pub fn acknowledge_session_update(
        &mut self,
        group_id: &str,
        member_id: &str,
        epoch: i32,
    ) -> Result<(), i16> {
        if epoch == INITIAL_EPOCH {
            return Err(INVALID_SHARE_SESSION_EPOCH);
        }
        let key = (group_id.to_string(), member_id.to_string());
        if epoch == FINAL_EPOCH {
            return match self.sessions.contains_key(&key) {
                true => Ok(()),
                false => Err(SHARE_SESSION_NOT_FOUND),
            };
        }
        self.continue_session(&key, epoch).map(|_| ())
    }

    /// The session at the epoch it expects, moved to the next one.
    fn continue_session(
        &mut self,
        key: &(String, String),
        epoch: i32,
    ) -> Result<&mut ShareSession, i16> {
        let session = self.sessions.get_mut(key).ok_or(SHARE_SESSION_NOT_FOUND)?;
        if session.epoch != epoch {
            return Err(INVALID_SHARE_SESSION_EPOCH);
        }
        session.epoch = next_epoch(session.epoch);
        Ok(session)
    }

    /// Ends a session (its final request was answered, or its member left the group).
    pub fn close(&mut self, group_id: &str, member_id: &str) -> Option<ShareSession> {
        self.sessions
            .remove(&(group_id.to_string(), member_id.to_string()))
    }

    /// Ends the sessions a closed connection opened: (group, member, session) of each.
    pub fn close_connection(&mut self, connection_id: u64) -> Vec<(String, String, ShareSession)> {
        let keys: Vec<(String, String)> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.connection_id == connection_id)
            .map(|(k, _)| k.clone())
            .collect();
        keys.into_iter()
            .filter_map(|k| {
                let s = self.sessions.remove(&k)?;
                Some((k.0, k.1, s))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: TopicIdPartition = (Uuid::from_u128(1), 0);
    const B: TopicIdPartition = (Uuid::from_u128(1), 1);

    fn ctx(list: &[TopicIdPartition]) -> ShareFetchContext {
        ShareFetchContext::Session(list.to_vec())
    }

    #[test]
    fn a_session_opens_at_zero_and_expects_each_next_epoch() {
        let mut cache = ShareSessionCache::new(10);
        let (c, replaced) = cache.new_context("g", "m", 0, &[A], &[], false, 7).unwrap();
        assert_eq!((c, replaced), (ctx(&[A]), None));
        assert_eq!(cache.get("g", "m").unwrap().epoch, 1);
        // Incremental: B joins; then A is forgotten.
        let (c, _) = cache.new_context("g", "m", 1, &[B], &[], true, 7).unwrap();
        assert_eq!(c, ctx(&[A, B]));
        let (c, _) = cache.new_context("g", "m", 2, &[], &[A], false, 7).unwrap();
        assert_eq!(c, ctx(&[B]));
        // A repeated or skipped epoch is refused and moves nothing.
        assert_eq!(
            cache.new_context("g", "m", 2, &[], &[], false, 7),
            Err(INVALID_SHARE_SESSION_EPOCH)
        );
        assert_eq!(
            cache.new_context("g", "m", 9, &[], &[], false, 7),
            Err(INVALID_SHARE_SESSION_EPOCH)
        );
        // ShareAcknowledge rides the same epochs.
        assert_eq!(cache.acknowledge_session_update("g", "m", 3), Ok(()));
        assert_eq!(
            cache.acknowledge_session_update("g", "m", 0),
            Err(INVALID_SHARE_SESSION_EPOCH)
        );
        assert_eq!(cache.get("g", "m").unwrap().epoch, 4);
        // The final request: then closed.
        let (c, _) = cache.new_context("g", "m", -1, &[], &[], true, 7).unwrap();
        assert_eq!(c, ShareFetchContext::Final);
        assert!(cache.close("g", "m").is_some());
        assert_eq!(
            cache.new_context("g", "m", 5, &[], &[], false, 7),
            Err(SHARE_SESSION_NOT_FOUND)
        );
        assert_eq!(
            cache.new_context("g", "m", -1, &[], &[], false, 7),
            Err(SHARE_SESSION_NOT_FOUND)
        );
        assert_eq!(
            cache.acknowledge_session_update("g", "m", -1),
            Err(SHARE_SESSION_NOT_FOUND)
        );
    }

    #[test]
    fn reopening_replaces_and_the_limit_holds() {
        let mut cache = ShareSessionCache::new(1);
        cache.new_context("g", "m", 0, &[A], &[], false, 1).unwrap();
        // Acknowledgements in an opening request are refused.
        assert_eq!(
            cache.new_context("g", "m", 0, &[A], &[], true, 1),
            Err(errors::INVALID_REQUEST)
        );
        let (_, replaced) = cache.new_context("g", "m", 0, &[B], &[], false, 1).unwrap();
        assert_eq!(replaced.unwrap().partitions.len(), 1);
        assert_eq!(
            cache.new_context("g", "other", 0, &[A], &[], false, 2),
            Err(SHARE_SESSION_LIMIT_REACHED)
        );
        // The connection closing ends its sessions.
        assert!(cache.close_connection(2).is_empty());
        let closed = cache.close_connection(1);
        assert_eq!(closed.len(), 1);
        assert_eq!((closed[0].0.as_str(), closed[0].1.as_str()), ("g", "m"));
        assert!(cache.is_empty());
    }

    #[test]
    fn epochs_wrap_to_one() {
        assert_eq!(next_epoch(0), 1);
        assert_eq!(next_epoch(i32::MAX), 1);
        assert_eq!(next_epoch(-1), -1);
    }
}
