//! The producer's default partitioner (`BuiltInPartitioner`, Kafka 3.3+, KIP-794).
//!
//! - A record with a key goes to `toPositive(murmur2(keyBytes)) % numPartitions`
//!   (`BuiltInPartitioner.partitionForKey`, `Utils.murmur2`, `Utils.toPositive` in
//!   `clients/src/main/java/org/apache/kafka/common/utils/Utils.java`). The application
//!   serializes the workload's key with `StringSerializer`: key 3 is the bytes of `"3"`.
//! - A record without a key goes to the **sticky** partition (KIP-480, KIP-794): the client
//!   keeps one partition until it has produced `batch.size` bytes to it, then draws the next
//!   (`updatePartitionInfo`, `nextPartition`). The draw is uniform over the partitions that have
//!   a leader (all of them if none has), or, with `partitioner.adaptive.partitioning.enable`
//!   (the default) and two partitions or more, weighted by `maxQueueSize + 1 - queueSize` of each
//!   partition's queue of unsent batches (`updatePartitionLoadStats`, fed by
//!   `RecordAccumulator.ready`). Every partition with a leader keeps a weight of at least one, so
//!   the partitions a draw can give are the same either way.

use super::protocol::Partition;

/// `Utils.murmur2`: the 32-bit MurmurHash2 Kafka's partitioner uses, seed `0x9747b28c`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, byte) in tail.iter().enumerate().rev() {
            h ^= u32::from(*byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// `Utils.toPositive`: clears the sign bit (not `abs`, which overflows on `i32::MIN`).
pub fn to_positive(number: i32) -> u32 {
    (number & 0x7fff_ffff) as u32
}

/// `BuiltInPartitioner.partitionForKey` for the key as `StringSerializer` writes it.
pub fn partition_for_key(key: u32, partitions: u32) -> Partition {
    to_positive(murmur2(key.to_string().as_bytes())) % partitions.max(1)
}

/// The choices of `nextPartition` for a record without a key, each partition as many times as
/// its weight: `queued[p]` is partition `p`'s count of unsent batches, `None` without a leader.
pub fn sticky_choices(queued: &[Option<usize>]) -> Vec<Partition> {
    let available: Vec<(Partition, usize)> = queued
        .iter()
        .enumerate()
        .filter_map(|(p, q)| q.map(|q| (p as Partition, q)))
        .collect();
    if available.is_empty() {
        return (0..queued.len() as Partition).collect();
    }
    if queued.len() < 2 {
        return available.into_iter().map(|(p, _)| p).collect();
    }
    let max = available.iter().map(|&(_, q)| q).max().unwrap_or(0);
    available
        .into_iter()
        .flat_map(|(p, q)| std::iter::repeat_n(p, max + 1 - q))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `UtilsTest.testMurmur2`'s vectors.
    #[test]
    fn murmur2_matches_kafkas_test_vectors() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            (b"abc", 479470107),
        ];
        for (data, hash) in cases {
            assert_eq!(murmur2(data), hash, "{}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn to_positive_clears_the_sign_bit() {
        assert_eq!(to_positive(-973932308), (-973932308i32 as u32) & 0x7fff_ffff);
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(5), 5);
    }

    #[test]
    fn a_key_always_lands_on_the_same_partition_and_keys_spread() {
        // "21" hashes to -973932308: toPositive gives 1173551340, which is 0 mod 3 and 4 mod 8.
        assert_eq!(partition_for_key(21, 3), 0);
        assert_eq!(partition_for_key(21, 8), 4);
        assert_eq!(partition_for_key(21, 1), 0);
        let used: std::collections::BTreeSet<Partition> =
            (0..32).map(|k| partition_for_key(k, 4)).collect();
        assert_eq!(used.len(), 4, "32 keys over 4 partitions use them all");
    }

    #[test]
    fn sticky_choices_weigh_short_queues_and_skip_leaderless_partitions() {
        assert_eq!(sticky_choices(&[Some(0), Some(3), Some(1)]), vec![0, 0, 0, 0, 1, 2, 2, 2]);
        assert_eq!(sticky_choices(&[Some(0), None, Some(0)]), vec![0, 2]);
        assert_eq!(sticky_choices(&[None, None]), vec![0, 1]);
        assert_eq!(sticky_choices(&[Some(2)]), vec![0]);
    }
}
