//! Sorted sets of 16-byte entries packed into sled values ("blocks").
//!
//! sled 0.34 spends ~200-300 bytes of memory per page and a leaf holds at most
//! 16 entries, however small, so one sled entry per archived message (a million
//! of them) would cost ~40 MB of RSS alone. Packing up to `MAX_BLOCK_ENTRIES`
//! entries into one value cuts the number of sled entries ~100 times.
//!
//! Layout: block key = prefix ++ the block's smallest entry; block value = its
//! entries, ascending, concatenated. Blocks of one prefix never overlap, so the
//! block holding an entry is the one with the greatest key <= prefix ++ entry.
//!
//! Contract: planning reads the tree's committed state and returns writes to
//! apply later (directly or in the caller's transaction). So the caller
//! serializes plan + apply per tree (it holds a mutex) and plans all entries of
//! one prefix in one call before applying: two plans on one prefix made before
//! either is applied do not see each other, and the later one would undo the
//! earlier. One plan writes each key at most once (a re-keyed block whose old
//! key is reused gets only the final Put), so applying it in order is enough.
//!
//! Iteration is not a snapshot: writes applied meanwhile may or may not show.
//! Entries still come out strictly ordered, each at most once, and one present
//! throughout is not missed (in `range`, unless the block before the cursor is
//! emptied and the first block re-keyed below it meanwhile).

use sled::transaction::{TransactionalTree, UnabortableTransactionError};
use sled::{IVec, Tree};
use std::ops::Bound;

pub(crate) type Entry = [u8; 16];

/// Most entries a block holds; a bigger one is split in two halves.
pub(crate) const MAX_BLOCK_ENTRIES: usize = 128;

const WIDTH: usize = std::mem::size_of::<Entry>();

/// A change to one block, computed outside a transaction and applied inside one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BlockWrite {
    Put { key: Vec<u8>, value: Vec<u8> },
    Delete { key: Vec<u8> },
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum PackedError {
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error("packed block {key:?} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
}

type Result<T> = std::result::Result<T, PackedError>;

/// The set of entries under `prefix` in `tree`. The caller makes the prefix
/// self-delimiting (e.g. a phone number followed by 0x00) so that prefixes
/// never overlap, and the tree holds only blocks.
pub(crate) struct PackedSet<'a> {
    pub tree: &'a Tree,
    pub prefix: &'a [u8],
}

impl PackedSet<'_> {
    /// The writes that add `entries` (any order, duplicates allowed; entries
    /// already present are no-ops). A block over `MAX_BLOCK_ENTRIES` is halved
    /// until every piece fits.
    pub(crate) fn plan_insert(&self, entries: &[Entry]) -> Result<Vec<BlockWrite>> {
        let mut writes = Vec::new();
        self.by_block(&sorted(entries), |old, new| {
            let mut merged = [old, new].concat();
            merged.sort_unstable();
            merged.dedup();
            if merged.len() > old.len() {
                self.rewrite(old, &merged, &mut writes);
            }
        })?;
        Ok(writes)
    }

    /// The writes that remove `gone` and add `added` in one plan (so they
    /// can be applied at once: two plans on one prefix would not see each
    /// other). Same rules as [`PackedSet::plan_insert`] and
    /// [`PackedSet::plan_remove`]; an entry in both is removed.
    pub(crate) fn plan_replace(&self, gone: &[Entry], added: &[Entry]) -> Result<Vec<BlockWrite>> {
        let gone = sorted(gone);
        let added = sorted(added);
        let all = sorted(&[gone.as_slice(), added.as_slice()].concat());
        let mut writes = Vec::new();
        self.by_block(&all, |old, mine| {
            let mut new: Vec<Entry> = old
                .iter()
                .filter(|e| gone.binary_search(e).is_err())
                .copied()
                .collect();
            new.extend(
                mine.iter()
                    .filter(|e| added.binary_search(e).is_ok() && gone.binary_search(e).is_err()),
            );
            new.sort_unstable();
            new.dedup();
            if new != old {
                self.rewrite(old, &new, &mut writes);
            }
        })?;
        Ok(writes)
    }

    /// The writes that remove `entries` (absent ones are ignored). A block left
    /// empty is deleted; one that lost its first entry is re-keyed. Blocks are
    /// not merged with their neighbours, so heavy removal leaves small blocks.
    pub(crate) fn plan_remove(&self, entries: &[Entry]) -> Result<Vec<BlockWrite>> {
        let mut writes = Vec::new();
        self.by_block(&sorted(entries), |old, gone| {
            let kept: Vec<Entry> = old
                .iter()
                .filter(|e| gone.binary_search(e).is_err())
                .copied()
                .collect();
            if kept.len() < old.len() {
                self.rewrite(old, &kept, &mut writes);
            }
        })?;
        Ok(writes)
    }

    /// The writes that make `entries` (sorted or not, duplicates allowed)
    /// the whole set: new blocks half full (room to grow without splitting),
    /// old block keys not reused deleted. Applied as one batch or inside one
    /// transaction, the set changes at once (retention rewrites a contact's
    /// entries this way).
    pub(crate) fn plan_rebuild(&self, entries: &[Entry]) -> sled::Result<Vec<BlockWrite>> {
        let mut sorted = entries.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut writes = Vec::new();
        let mut new_keys = std::collections::HashSet::new();
        for block in sorted.chunks(MAX_BLOCK_ENTRIES / 2) {
            let mut key = self.prefix.to_vec();
            key.extend_from_slice(&block[0]);
            new_keys.insert(key.clone());
            writes.push(BlockWrite::Put {
                key,
                value: block.concat(),
            });
        }
        for old in self.plan_clear()? {
            if let BlockWrite::Delete { key } = old {
                if !new_keys.contains(&key) {
                    writes.push(BlockWrite::Delete { key });
                }
            }
        }
        Ok(writes)
    }

    /// The writes that remove every block of the prefix (malformed ones too).
    pub(crate) fn plan_clear(&self) -> sled::Result<Vec<BlockWrite>> {
        self.tree
            .scan_prefix(self.prefix)
            .keys()
            .map(|key| key.map(|key| BlockWrite::Delete { key: key.to_vec() }))
            .collect()
    }

    /// Entries strictly below `before` (all when None), descending. Lazy: one
    /// look-up per block, so the newest 50 cost one or two blocks.
    pub(crate) fn rev_before(
        &self,
        before: Option<&Entry>,
    ) -> impl Iterator<Item = Result<Entry>> + '_ {
        let before = before.copied();
        let entries = self.walk(true, move |at| match (at, &before) {
            (Some(at), _) => self.tree.range(self.prefix..at).next_back(),
            (None, Some(b)) => self
                .tree
                .range(self.prefix..self.key(b).as_slice())
                .next_back(),
            (None, None) => self.tree.scan_prefix(self.prefix).next_back(),
        });
        // Only the first block read can hold entries at or above `before`.
        entries.filter(move |e| match (e, &before) {
            (Ok(e), Some(before)) => e < before,
            _ => true,
        })
    }

    /// Entries in [from, to), ascending, lazily.
    pub(crate) fn range(
        &self,
        from: &Entry,
        to: &Entry,
    ) -> impl Iterator<Item = Result<Entry>> + '_ {
        let (from, to, end) = (*from, *to, self.key(to));
        let entries = self.walk(false, move |at| match at {
            Some(at) => self
                .tree
                .range::<&[u8], _>((Bound::Excluded(at), Bound::Excluded(end.as_slice())))
                .next(),
            // The block holding `from` may start below it.
            None => self
                .at_or_before(&from)
                .or_else(|| self.tree.range(self.prefix..end.as_slice()).next()),
        });
        entries.filter(move |e| e.as_ref().map_or(true, |e| from <= *e && *e < to))
    }

    /// Number of entries (reads every block; for tests and maintenance).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn len(&self) -> Result<usize> {
        self.tree
            .scan_prefix(self.prefix)
            .map(|kv| {
                let (key, value) = kv?;
                Ok(self.decode(&key, &value)?.len())
            })
            .sum()
    }

    fn key(&self, first: &Entry) -> Vec<u8> {
        [self.prefix, first].concat()
    }

    /// Replaces the block holding `old` (none when empty) by `new`, halved
    /// until the pieces fit. The old key is deleted only when no piece reuses it.
    fn rewrite(&self, old: &[Entry], new: &[Entry], writes: &mut Vec<BlockWrite>) {
        let pieces = halves(new);
        if let Some(old_first) = old.first() {
            if !pieces.iter().any(|p| p.first() == Some(old_first)) {
                writes.push(BlockWrite::Delete {
                    key: self.key(old_first),
                });
            }
        }
        for piece in pieces {
            writes.push(BlockWrite::Put {
                key: self.key(&piece[0]),
                value: piece.concat(),
            });
        }
    }

    /// Calls `f(block, its entries)` for each block that some of the sorted
    /// `entries` fall in: the block with the greatest first entry <= them, or
    /// the first block for those below all (empty `block` in an empty set).
    /// Reads two keys and one block per block touched.
    fn by_block(&self, entries: &[Entry], mut f: impl FnMut(&[Entry], &[Entry])) -> Result<()> {
        let mut rest = entries;
        while let Some(first) = rest.first() {
            let found = match self.at_or_before(first) {
                None => self.tree.scan_prefix(self.prefix).next(),
                found => found,
            };
            let block = match found.transpose()? {
                Some((key, value)) => self.decode(&key, &value)?,
                None => Vec::new(),
            };
            let end = match block.first() {
                Some(first) => self.next_first(first)?,
                None => None,
            };
            let (mine, later) = rest.split_at(count_below(rest, end));
            f(&block, mine);
            rest = later;
        }
        Ok(())
    }

    /// The block with the greatest key <= prefix ++ `entry`. Every key in
    /// [prefix, prefix ++ entry] starts with the prefix.
    fn at_or_before(&self, entry: &Entry) -> Option<sled::Result<(IVec, IVec)>> {
        self.tree
            .range(self.prefix..=self.key(entry).as_slice())
            .next_back()
    }

    /// The first entry of the block after the one starting with `first`.
    fn next_first(&self, first: &Entry) -> Result<Option<Entry>> {
        match self.tree.get_gt(self.key(first))? {
            Some((key, _)) if key.starts_with(self.prefix) => Ok(Some(self.first_of(&key)?)),
            _ => Ok(None),
        }
    }

    fn first_of(&self, key: &[u8]) -> Result<Entry> {
        key.strip_prefix(self.prefix)
            .and_then(|rest| Entry::try_from(rest).ok())
            .ok_or_else(|| corrupt(key, "key is not the prefix and 16 bytes"))
    }

    /// A block read under the prefix, checked against everything the layout
    /// promises: the rest of the store trusts these invariants.
    fn decode(&self, key: &[u8], value: &[u8]) -> Result<Vec<Entry>> {
        let first = self.first_of(key)?;
        if value.is_empty() || value.len() % WIDTH != 0 {
            return Err(corrupt(
                key,
                &format!("length {} is not a positive multiple of 16", value.len()),
            ));
        }
        let entries: Vec<Entry> = value
            .chunks_exact(WIDTH)
            .map(|chunk| {
                let mut entry = [0; WIDTH];
                entry.copy_from_slice(chunk);
                entry
            })
            .collect();
        if entries.windows(2).any(|w| w[0] >= w[1]) {
            return Err(corrupt(key, "entries are not strictly ascending"));
        }
        if entries.first() != Some(&first) {
            return Err(corrupt(key, "key does not end with the first entry"));
        }
        Ok(entries)
    }

    /// The entries of the blocks that `step(key of the last block read)`
    /// returns, one by one, each block's reversed when `rev`. Each step is a
    /// fresh look-up, not a sled Iter, whose cached leaf would hide a block that
    /// a split or re-key moved behind the cursor meanwhile. A block can still
    /// be read twice that way, so entries are filtered to come out strictly
    /// ordered. After an error, which is yielded, the iteration ends.
    fn walk<'a>(
        &'a self,
        rev: bool,
        mut step: impl FnMut(Option<&[u8]>) -> Option<sled::Result<(IVec, IVec)>> + 'a,
    ) -> impl Iterator<Item = Result<Entry>> + 'a {
        let (mut at, mut failed, mut last) = (None::<IVec>, false, None::<Entry>);
        let blocks = std::iter::from_fn(move || {
            if failed {
                return None;
            }
            let block = step(at.as_deref())?
                .map_err(PackedError::from)
                .and_then(|(key, value)| {
                    let block = self.decode(&key, &value);
                    at = Some(key);
                    block
                });
            failed = block.is_err();
            Some(block)
        });
        let entries = blocks.flat_map(move |block| {
            let (mut entries, error) = match block {
                Ok(entries) => (entries, None),
                Err(e) => (Vec::new(), Some(Err(e))),
            };
            if rev {
                entries.reverse();
            }
            entries.into_iter().map(Ok).chain(error)
        });
        entries.filter(move |entry| {
            let Ok(entry) = entry else { return true };
            let fresh = last.is_none_or(|last| if rev { *entry < last } else { *entry > last });
            if fresh {
                last = Some(*entry);
            }
            fresh
        })
    }
}

/// Applies planned writes as one atomic sled batch.
pub(crate) fn apply(tree: &Tree, writes: &[BlockWrite]) -> sled::Result<()> {
    let mut batch = sled::Batch::default();
    for write in writes {
        match write {
            BlockWrite::Put { key, value } => batch.insert(key.as_slice(), value.as_slice()),
            BlockWrite::Delete { key } => batch.remove(key.as_slice()),
        }
    }
    tree.apply_batch(batch)
}

/// Applies planned writes inside the caller's transaction, in order.
pub(crate) fn apply_tx(
    tree: &TransactionalTree,
    writes: &[BlockWrite],
) -> std::result::Result<(), UnabortableTransactionError> {
    for write in writes {
        match write {
            BlockWrite::Put { key, value } => tree.insert(key.as_slice(), value.as_slice())?,
            BlockWrite::Delete { key } => tree.remove(key.as_slice())?,
        };
    }
    Ok(())
}

fn sorted(entries: &[Entry]) -> Vec<Entry> {
    let mut sorted = entries.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    sorted
}

/// How many of the sorted `entries` come before `end` (all when None).
fn count_below(entries: &[Entry], end: Option<Entry>) -> usize {
    end.map_or(entries.len(), |end| entries.partition_point(|e| *e < end))
}

/// `entries` halved, repeatedly, until every piece fits in a block.
fn halves(entries: &[Entry]) -> Vec<&[Entry]> {
    if entries.len() <= MAX_BLOCK_ENTRIES {
        return if entries.is_empty() {
            Vec::new()
        } else {
            vec![entries]
        };
    }
    let (low, high) = entries.split_at(entries.len() / 2);
    let mut pieces = halves(low);
    pieces.extend(halves(high));
    pieces
}

fn corrupt(key: &[u8], reason: &str) -> PackedError {
    PackedError::Corrupt {
        key: key.escape_ascii().to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const A: &[u8] = b"+1555\0";
    const B: &[u8] = b"+15551\0"; // "+1555" is a prefix of "+15551"; "+1555\0" is not

    fn db() -> sled::Db {
        sled::Config::new().temporary(true).open().unwrap()
    }

    fn set(tree: &Tree) -> PackedSet<'_> {
        PackedSet { tree, prefix: A }
    }

    /// Entries that differ in their first and last bytes, so comparisons must
    /// look at all 16.
    fn e(n: u16) -> Entry {
        let mut entry = [0xab; 16];
        entry[0] = (n >> 8) as u8;
        entry[15] = n as u8;
        entry
    }

    fn es(ns: impl IntoIterator<Item = u16>) -> Vec<Entry> {
        ns.into_iter().map(e).collect()
    }

    /// A permutation of 0..n, so batches arrive out of order.
    fn shuffled(n: u16) -> Vec<u16> {
        (0..n)
            .map(|i| ((i as u32 * 7919) % n as u32) as u16)
            .collect()
    }

    fn insert(set: &PackedSet, entries: &[Entry]) {
        apply(set.tree, &set.plan_insert(entries).unwrap()).unwrap();
    }

    fn remove(set: &PackedSet, entries: &[Entry]) {
        apply(set.tree, &set.plan_remove(entries).unwrap()).unwrap();
    }

    fn ascending(set: &PackedSet) -> Vec<Entry> {
        let mut all: Vec<Entry> = set.rev_before(None).collect::<Result<_>>().unwrap();
        all.reverse();
        all
    }

    /// The blocks of the set after checking the layout's invariants.
    fn blocks(set: &PackedSet) -> Vec<Vec<Entry>> {
        let blocks: Vec<Vec<Entry>> = set
            .tree
            .scan_prefix(set.prefix)
            .map(|kv| {
                let (k, v) = kv.unwrap();
                set.decode(&k, &v).unwrap()
            })
            .collect();
        for block in &blocks {
            assert!(
                !block.is_empty() && block.len() <= MAX_BLOCK_ENTRIES,
                "{}",
                block.len()
            );
        }
        for pair in blocks.windows(2) {
            assert!(pair[0].last() < pair[1].first(), "blocks overlap");
        }
        blocks
    }

    fn assert_minimal(writes: &[BlockWrite]) {
        let mut keys: Vec<&[u8]> = writes
            .iter()
            .map(|w| match w {
                BlockWrite::Put { key, .. } | BlockWrite::Delete { key } => key.as_slice(),
            })
            .collect();
        keys.sort();
        let n = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), n, "a key written twice in one plan");
    }

    #[test]
    fn inserts_read_back_both_ways_and_repeats_are_no_ops() {
        let db = db();
        let set = set(&db);
        assert!(set.plan_insert(&[]).unwrap().is_empty());
        insert(&set, &es([5, 300, 1, 5, 42, 1]));
        assert_eq!(ascending(&set), es([1, 5, 42, 300]));
        let desc: Vec<Entry> = set.rev_before(None).map(|e| e.unwrap()).collect();
        assert_eq!(desc, es([300, 42, 5, 1]));
        let asc: Vec<Entry> = set.range(&e(0), &e(u16::MAX)).map(|e| e.unwrap()).collect();
        assert_eq!(asc, es([1, 5, 42, 300]));
        assert!(set.plan_insert(&es([42, 1, 42])).unwrap().is_empty());
        assert_eq!(set.len().unwrap(), 4);
        assert_eq!(blocks(&set).len(), 1);
    }

    #[test]
    fn rebuild_replaces_the_whole_set_in_one_plan() {
        let db = db();
        let set = set(&db);
        let other = PackedSet {
            tree: &db,
            prefix: B,
        };
        insert(&set, &es(0..300));
        insert(&other, &es([7, 8]));
        // Entries moved (as retention's new copies are), some dropped, some new.
        let mut wanted: Vec<Entry> = es((0..300).filter(|n| n % 3 != 0));
        wanted.extend(es(1000..1100));
        let writes = set.plan_rebuild(&wanted).unwrap();
        assert_minimal(&writes);
        apply(&db, &writes).unwrap();
        wanted.sort();
        assert_eq!(ascending(&set), wanted);
        assert!(blocks(&set)
            .iter()
            .all(|b| b.len() <= MAX_BLOCK_ENTRIES / 2));
        assert_eq!(ascending(&other), es([7, 8]));
        // Inside a transaction too; rebuilding to nothing clears.
        let writes = set.plan_rebuild(&[]).unwrap();
        db.transaction(|t| apply_tx(t, &writes).map_err(Into::into))
            .map_err(|e: sled::transaction::TransactionError<()>| e)
            .unwrap();
        assert!(ascending(&set).is_empty());
        assert_eq!(ascending(&other), es([7, 8]));
    }

    #[test]
    fn replace_removes_and_adds_in_one_plan() {
        let db = db();
        let set = set(&db);
        insert(&set, &es(0..400));
        let gone = es((0..400).filter(|n| n % 5 == 0));
        let added = es((0..400).filter(|n| n % 5 == 0).map(|n| n + 1000));
        let writes = set.plan_replace(&gone, &added).unwrap();
        assert_minimal(&writes);
        apply(&db, &writes).unwrap();
        let mut want: Vec<Entry> = es((0..400).filter(|n| n % 5 != 0));
        want.extend(added.iter().copied());
        want.sort();
        assert_eq!(ascending(&set), want);
        blocks(&set);
        // Removing everything and adding below the first block.
        let writes = set.plan_replace(&want, &es([0])).unwrap();
        apply(&db, &writes).unwrap();
        assert_eq!(ascending(&set), es([0]));
        assert!(set.plan_replace(&[], &[]).unwrap().is_empty());
    }

    #[test]
    fn a_big_batch_splits_into_bounded_blocks() {
        let db = db();
        let set = set(&db);
        let writes = set.plan_insert(&es(shuffled(1000))).unwrap();
        assert_minimal(&writes);
        apply(&db, &writes).unwrap();
        assert_eq!(blocks(&set).len(), 8); // 1000 -> 500 -> 250 -> 125
        assert_eq!(ascending(&set), es(0..1000));
    }

    #[test]
    fn single_inserts_split_into_bounded_blocks() {
        let db = db();
        let set = set(&db);
        for n in shuffled(1000) {
            let writes = set.plan_insert(&[e(n)]).unwrap();
            assert_minimal(&writes);
            apply(&db, &writes).unwrap();
        }
        assert!(blocks(&set).len() >= 1000 / MAX_BLOCK_ENTRIES);
        assert_eq!(ascending(&set), es(0..1000));
        assert_eq!(set.len().unwrap(), 1000);
    }

    #[test]
    fn a_new_smallest_entry_rekeys_the_first_block() {
        let db = db();
        let set = set(&db);
        insert(&set, &es(10..20));
        let writes = set.plan_insert(&[e(5)]).unwrap();
        assert_eq!(
            writes,
            vec![
                BlockWrite::Delete {
                    key: set.key(&e(10))
                },
                BlockWrite::Put {
                    key: set.key(&e(5)),
                    value: es([5])
                        .into_iter()
                        .chain(es(10..20))
                        .collect::<Vec<_>>()
                        .concat()
                },
            ]
        );
        apply(&db, &writes).unwrap();
        assert_eq!(blocks(&set)[0][0], e(5));
    }

    #[test]
    fn removal_rekeys_and_deletes_blocks() {
        let db = db();
        let set = set(&db);
        insert(&set, &es(0..300)); // blocks of 75: 0, 75, 150, 225
        assert!(set.plan_remove(&es([1000, 300])).unwrap().is_empty());
        remove(&set, &es([3, 80, 81]));
        assert_eq!(blocks(&set).len(), 4);

        let writes = set.plan_remove(&[e(75)]).unwrap();
        assert_eq!(
            writes.len(),
            2,
            "re-key: delete the old key, put the new one"
        );
        apply(&db, &writes).unwrap();
        let firsts: Vec<Entry> = blocks(&set).iter().map(|b| b[0]).collect();
        assert_eq!(firsts, es([0, 76, 150, 225]));

        let writes = set.plan_remove(&es(150..225)).unwrap();
        assert_eq!(
            writes,
            vec![BlockWrite::Delete {
                key: set.key(&e(150))
            }]
        );
        apply(&db, &writes).unwrap();
        let expected: Vec<u16> = (0..300)
            .filter(|n| ![3, 80, 81, 75].contains(n) && !(150..225).contains(n))
            .collect();
        assert_eq!(ascending(&set), es(expected));
        assert_eq!(blocks(&set).len(), 3);

        apply(&db, &set.plan_clear().unwrap()).unwrap();
        assert_eq!(set.len().unwrap(), 0);
        assert!(db.is_empty());
    }

    #[test]
    fn delimited_prefixes_stay_apart() {
        let db = db();
        let a = set(&db);
        let b = PackedSet {
            prefix: B,
            tree: &db,
        };
        insert(&a, &es(0..200));
        insert(&b, &es(100..400));
        // Without the delimiter the shorter number would see the longer's blocks.
        assert_eq!(db.scan_prefix(&A[..A.len() - 1]).count(), db.len());
        assert_eq!(ascending(&a), es(0..200));
        assert_eq!(ascending(&b), es(100..400));
        remove(&a, &es(100..150));
        apply(&db, &b.plan_insert(&es([0, 1])).unwrap()).unwrap();
        assert_eq!(a.range(&e(0), &e(1000)).count(), 150);
        assert_eq!(b.rev_before(Some(&e(101))).count(), 3);
        apply(&db, &a.plan_clear().unwrap()).unwrap();
        assert_eq!(a.len().unwrap(), 0);
        assert_eq!(b.len().unwrap(), 302);
    }

    #[test]
    fn bounds_of_rev_before_and_range() {
        let db = db();
        let set = set(&db);
        insert(&set, &es((0..600).step_by(2))); // several blocks, even entries
        let below =
            |n: u16| -> Vec<Entry> { set.rev_before(Some(&e(n))).map(|e| e.unwrap()).collect() };
        let range = |a: u16, b: u16| -> Vec<Entry> {
            set.range(&e(a), &e(b)).map(|e| e.unwrap()).collect()
        };
        assert_eq!(below(10), es([8, 6, 4, 2, 0]));
        assert_eq!(below(11), es([10, 8, 6, 4, 2, 0]));
        assert_eq!(below(0), es([]));
        assert_eq!(below(u16::MAX).len(), 300);
        assert_eq!(set.rev_before(Some(&e(400))).take(50).count(), 50);
        assert_eq!(range(10, 16), es([10, 12, 14]));
        assert_eq!(range(11, 17), es([12, 14, 16]));
        assert_eq!(range(250, 262), es((250..262).step_by(2)));
        assert_eq!(range(10, 10), es([]));
        assert_eq!(range(20, 10), es([]));
        assert_eq!(range(598, 10), es([]));
        assert_eq!(range(598, u16::MAX), es([598]));
    }

    #[test]
    fn iteration_survives_rekeys_and_splits_meanwhile() {
        let db = db();
        let set = set(&db);
        insert(&set, &es(10..20));
        let mut desc = set.rev_before(None);
        assert_eq!(desc.next().unwrap().unwrap(), e(19)); // reads the whole block
        insert(&set, &[e(5)]); // re-keys it downwards, to where `desc` goes next
        let rest: Vec<Entry> = desc.map(|e| e.unwrap()).collect();
        assert_eq!(rest, es((10..19).rev().chain([5])));

        apply(&db, &set.plan_clear().unwrap()).unwrap();
        insert(&set, &es(100..200));
        let mut asc = set.range(&e(0), &e(1000));
        assert_eq!(asc.next().unwrap().unwrap(), e(100)); // reads the whole block
        insert(&set, &es(0..50)); // splits it: e(125..200) move to a new block
        let rest: Vec<Entry> = asc.map(|e| e.unwrap()).collect();
        assert_eq!(rest, es(101..200));
    }

    #[test]
    fn apply_tx_matches_apply() {
        let db = db();
        let (direct, in_tx) = (db.open_tree("direct").unwrap(), db.open_tree("tx").unwrap());
        let plans: Vec<(bool, Vec<Entry>)> = vec![
            (true, es(shuffled(500))),
            (true, es([1000, 1001])),
            (false, es([0, 1, 2, 250, 251])),
            (false, es(300..400)),
            (true, es([0])),
        ];
        for (add, entries) in plans {
            for tree in [&direct, &in_tx] {
                let set = set(tree);
                let writes = if add {
                    set.plan_insert(&entries)
                } else {
                    set.plan_remove(&entries)
                }
                .unwrap();
                if std::ptr::eq(tree, &direct) {
                    apply(tree, &writes).unwrap();
                } else {
                    tree.transaction(|t| {
                        Ok::<_, sled::transaction::ConflictableTransactionError>(apply_tx(
                            t, &writes,
                        )?)
                    })
                    .unwrap();
                }
            }
            let dump = |t: &Tree| t.iter().collect::<sled::Result<Vec<_>>>().unwrap();
            assert_eq!(dump(&direct), dump(&in_tx));
        }
    }

    #[test]
    fn corrupt_blocks_are_errors_not_panics() {
        let key = |rest: &[u8]| [A, rest].concat();
        let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (key(&e(1)), [&e(1)[..], &[0]].concat()),
            (key(&e(1)), Vec::new()),
            (key(&e(2)), [e(2), e(1)].concat()),
            (key(&e(1)), [e(1), e(1)].concat()),
            (key(&e(1)), [e(2), e(3)].concat()),
            (key(&e(1)[..15]), e(1).to_vec()),
            (key(&[&e(1)[..], &[0]].concat()), e(1).to_vec()),
        ];
        fn is_corrupt<T>(r: Result<T>) -> bool {
            matches!(r, Err(PackedError::Corrupt { .. }))
        }
        for (k, v) in cases {
            let db = db();
            db.insert(&k, v).unwrap();
            let set = set(&db);
            assert!(
                is_corrupt(set.rev_before(None).collect::<Result<Vec<_>>>()),
                "{k:?}"
            );
            let all = set.range(&[0; 16], &[0xff; 16]);
            assert!(is_corrupt(all.collect::<Result<Vec<_>>>()), "{k:?}");
            assert!(is_corrupt(set.len()), "{k:?}");
            assert!(is_corrupt(set.plan_insert(&[[0xff; 16]])), "{k:?}");
            assert!(is_corrupt(set.plan_remove(&[[0xff; 16]])), "{k:?}");
            assert_eq!(set.plan_clear().unwrap().len(), 1);
        }
        // Iteration ends at the first error, even with good blocks after it.
        let db = db();
        db.insert(key(&e(1)), vec![1; 17]).unwrap();
        db.insert(key(&e(5)), e(5).to_vec()).unwrap();
        let set = set(&db);
        let all: Vec<Result<Entry>> = set.range(&e(0), &e(9)).collect();
        assert!(
            matches!(all[..], [Err(PackedError::Corrupt { .. })]),
            "{all:?}"
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(usize, Vec<u16>),
        Remove(usize, Vec<u16>),
        Clear(usize),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        // A small key space, so batches collide with each other and themselves.
        let batch = || proptest::collection::vec(0u16..600, 0..300);
        prop_oneof![
            4 => (0..2usize, batch()).prop_map(|(p, b)| Op::Insert(p, b)),
            2 => (0..2usize, batch()).prop_map(|(p, b)| Op::Remove(p, b)),
            1 => (0..2usize).prop_map(Op::Clear),
        ]
    }

    proptest::proptest! {
        #[test]
        fn behaves_like_a_btreeset(ops in proptest::collection::vec(op(), 1..20), from in 0u16..600, to in 0u16..600) {
            let db = db();
            let sets = [set(&db), PackedSet { prefix: B, ..set(&db) }];
            let mut models = [BTreeSet::<Entry>::new(), BTreeSet::new()];
            for op in ops {
                let (p, writes) = match op {
                    Op::Insert(p, batch) => {
                        let batch = es(batch);
                        models[p].extend(&batch);
                        (p, sets[p].plan_insert(&batch).unwrap())
                    }
                    Op::Remove(p, batch) => {
                        let batch = es(batch);
                        models[p].retain(|e| !batch.contains(e));
                        (p, sets[p].plan_remove(&batch).unwrap())
                    }
                    Op::Clear(p) => {
                        models[p].clear();
                        (p, sets[p].plan_clear().unwrap())
                    }
                };
                assert_minimal(&writes);
                apply(sets[p].tree, &writes).unwrap();
                for (set, model) in sets.iter().zip(&models) {
                    blocks(set);
                    let desc: Vec<Entry> = set.rev_before(None).collect::<Result<_>>().unwrap();
                    proptest::prop_assert!(desc.iter().eq(model.iter().rev()));
                    let below: Vec<Entry> = set.rev_before(Some(&e(from))).collect::<Result<_>>().unwrap();
                    proptest::prop_assert!(below.iter().eq(model.range(..e(from)).rev()));
                    let asc: Vec<Entry> = set.range(&e(from), &e(to)).collect::<Result<_>>().unwrap();
                    let expected: Vec<&Entry> = if from < to { model.range(e(from)..e(to)).collect() } else { Vec::new() };
                    proptest::prop_assert!(asc.iter().eq(expected));
                    proptest::prop_assert_eq!(set.len().unwrap(), model.len());
                }
            }
        }
    }
}
