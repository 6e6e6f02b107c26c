//! Archived message records in append-only files (the history files).
//!
//! Messages that have reached a final status leave sled (whose memory grows
//! with its page count, see `history.rs`) and are appended here; sled keeps
//! only their `Location`. Records are read back with `pread`, so they sit in
//! the OS page cache, not in our RSS.
//!
//! Files are `NNNNNNNN.hist` (8 decimal digits) in one directory, numbered
//! from 1; appends go to the last one until the next frame would take it past
//! `max_file_bytes`. A file is frames back to back:
//!
//! ```text
//! offset  size  field
//!      0     2  magic b"SH"
//!      2     1  flags: bit 0 = erased, the other bits 0
//!      3     1  reserved, 0
//!      4     4  payload length n, u32 LE (< 16 MiB)
//!      8     4  CRC-32 (crc32fast) of the payload, u32 LE
//!     12     n  payload
//!   12+n     4  n again, u32 LE (the trailer)
//! ```
//!
//! The trailer lets `iter_rev` step backwards: the 4 bytes before a frame's
//! end give its start, and the header found there must agree. Erasing sets
//! the flag and zeroes the payload and the checksum in place; the lengths
//! stay, so the file still walks both ways. An erased frame's checksum is
//! not checked.
//!
//! Crash safety: `append` returns only once its frames (and a new file's
//! directory entry) are fsync'd. A crash mid-append can leave a torn frame
//! at the end of the last file: `open` checks that file and cuts a damaged
//! tail. Damage followed by a valid frame is not a tail; it stays, and
//! `read` reports it.

use std::collections::{btree_map, BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

const MAGIC: [u8; 2] = *b"SH";
const FLAG_ERASED: u8 = 1;
const HEADER: u64 = 12;
/// Header plus trailer: a frame is this plus its payload.
const OVERHEAD: u64 = HEADER + 4;
/// Payloads are shorter than this.
pub(crate) const MAX_RECORD: usize = 16 << 20;
/// File names have 8 digits.
const MAX_FILE_NUMBER: u32 = 99_999_999;
/// Frames gathered before one `pwrite`: batches of small records cost few
/// syscalls, batches of large ones little memory.
const WRITE_CHUNK: usize = 1 << 20;

/// Where an archived record lives: file number and byte offset of its frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Location {
    pub file: u32,
    pub offset: u32,
}

impl Location {
    /// File then offset, big-endian: the bytes sort in archive order.
    pub(crate) fn to_bytes(self) -> [u8; 8] {
        let mut raw = [0; 8];
        raw[..4].copy_from_slice(&self.file.to_be_bytes());
        raw[4..].copy_from_slice(&self.offset.to_be_bytes());
        raw
    }

    pub(crate) fn from_bytes(raw: [u8; 8]) -> Location {
        let [a, b, c, d, e, f, g, h] = raw;
        Location {
            file: u32::from_be_bytes([a, b, c, d]),
            offset: u32::from_be_bytes([e, f, g, h]),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum HistoryError {
    #[error("history: {0}")]
    Io(#[from] io::Error),
    #[error("history record at {at:?} is corrupt: {reason}")]
    Corrupt { at: Location, reason: String },
    #[error("history record at {at:?} was erased")]
    Erased { at: Location },
    #[error("history file {file} is missing")]
    MissingFile { file: u32 },
}

pub(crate) struct HistoryLog {
    dir: PathBuf,
    max_file_bytes: u64,
    writer: Mutex<Writer>,
    /// Read handles by file number, opened on first use (`pread` needs no
    /// lock, so readers only hold this one while looking up).
    readers: Mutex<HashMap<u32, Arc<File>>>,
}

/// The file appends go to, and the end of its frames (bytes past it are a
/// failed write's leftovers: the next append writes over them).
struct Writer {
    number: u32,
    file: File,
    size: u64,
}

/// A frame as [`HistoryLog::frames`] lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameInfo {
    pub at: Location,
    pub erased: bool,
    /// Header, payload and trailer.
    pub bytes: u64,
}

/// A frame's header, checked against its trailer.
struct Header {
    erased: bool,
    len: u32,
    crc: u32,
}

impl HistoryLog {
    /// Open or create the directory; cut a torn tail off the last file.
    pub(crate) fn open(dir: &Path, max_file_bytes: u64) -> Result<HistoryLog, HistoryError> {
        if max_file_bytes > u64::from(u32::MAX) {
            return Err(invalid("history files larger than 4 GiB: offsets are 32-bit").into());
        }
        if !dir.is_dir() {
            fs::create_dir_all(dir)?;
            // The directory's own entry must outlive a crash, as its files do.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        let writer = match list_files(dir)?.last() {
            Some(&(number, _)) => {
                let path = file_path(dir, number);
                let file = OpenOptions::new().read(true).write(true).open(&path)?;
                let size = recover_tail(&file, &path)?;
                Writer { number, file, size }
            }
            None => Writer {
                number: 1,
                file: create_file(dir, 1)?,
                size: 0,
            },
        };
        Ok(HistoryLog {
            dir: dir.to_path_buf(),
            max_file_bytes,
            writer: Mutex::new(writer),
            readers: Mutex::default(),
        })
    }

    /// Append records in order and make them durable; their locations, in
    /// the same order. Callers index a location only after this returns. On
    /// an error, frames already written stay unindexed, as after a crash
    /// (`iter_rev` lists them; their records are still live in sled).
    pub(crate) fn append(&self, records: &[&[u8]]) -> Result<Vec<Location>, HistoryError> {
        if records.iter().any(|r| r.len() >= MAX_RECORD) {
            return Err(invalid("history record of 16 MiB or more").into());
        }
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let mut w = lock(&self.writer);
        let mut locations = Vec::with_capacity(records.len());
        let mut pending = Vec::new();
        for record in records {
            let frame_len = OVERHEAD + record.len() as u64;
            let mut end = w.size + pending.len() as u64;
            // An empty file takes any frame: a record larger than the limit
            // goes alone into a fresh file.
            if end > 0 && end + frame_len > self.max_file_bytes {
                w.write(&mut pending)?;
                // The old file ends at its last frame (no failed write's
                // leftovers for `iter_rev` to meet), and what this batch left
                // in it is promised durable too.
                w.file.set_len(w.size)?;
                w.file.sync_data()?;
                let number = w
                    .number
                    .checked_add(1)
                    .filter(|n| *n <= MAX_FILE_NUMBER)
                    .ok_or_else(|| invalid("history file numbers exhausted"))?;
                let file = create_file(&self.dir, number)?;
                // A handle cached under this number would be a stray file's.
                lock(&self.readers).remove(&number);
                *w = Writer {
                    number,
                    file,
                    size: 0,
                };
                end = 0;
            }
            // 0, or below max_file_bytes, which fits (checked at open).
            let offset = u32::try_from(end).map_err(|_| invalid("history offset past 4 GiB"))?;
            locations.push(Location {
                file: w.number,
                offset,
            });
            encode(&mut pending, record);
            if pending.len() >= WRITE_CHUNK {
                w.write(&mut pending)?;
            }
        }
        w.write(&mut pending)?;
        w.file.sync_data()?;
        Ok(locations)
    }

    /// Read one record, checking its frame and checksum.
    pub(crate) fn read(&self, at: Location) -> Result<Vec<u8>, HistoryError> {
        let file = self.reader(at.file)?;
        let offset = u64::from(at.offset);
        let header = read_header(&file, offset)?.map_err(|reason| corrupt(at, reason))?;
        live_payload(&file, at, &header)?.ok_or(HistoryError::Erased { at })
    }

    /// Erase records in place (flag set, payload and checksum zeroed), then
    /// fsync the files touched. Erasing twice is fine.
    pub(crate) fn erase(&self, at: &[Location]) -> Result<(), HistoryError> {
        // These are writes too: one writer at a time, and no append half-done.
        let _writer = lock(&self.writer);
        let mut touched: BTreeMap<u32, File> = BTreeMap::new();
        let zeros = [0u8; 8192];
        for &loc in at {
            let file = match touched.entry(loc.file) {
                btree_map::Entry::Occupied(e) => e.into_mut(),
                btree_map::Entry::Vacant(e) => {
                    e.insert(open_existing(&self.path(loc.file), loc.file, true)?)
                }
            };
            let offset = u64::from(loc.offset);
            // Only ever overwrite a whole frame: a wrong location must not
            // zero another record's bytes. Its checksum need not hold (a
            // corrupt record can still be erased).
            let header = read_header(file, offset)?.map_err(|reason| corrupt(loc, reason))?;
            // The checksum goes too: the CRC of a short text can confirm a guess at it.
            file.write_all_at(&header_bytes(FLAG_ERASED, header.len, 0), offset)?;
            let mut done = 0;
            while done < u64::from(header.len) {
                let n = zeros.len().min((u64::from(header.len) - done) as usize);
                file.write_all_at(&zeros[..n], offset + HEADER + done)?;
                done += n as u64;
            }
        }
        for file in touched.values() {
            file.sync_data()?;
        }
        Ok(())
    }

    /// Records newest first, strictly before `before` when given, erased ones
    /// skipped. Sees the appends finished when it is called, not later ones.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn iter_rev(
        &self,
        before: Option<Location>,
    ) -> impl Iterator<Item = Result<(Location, Vec<u8>), HistoryError>> + '_ {
        self.iter_rev_files(before, |_| true)
    }

    /// Where the next append starts at the earliest: every frame an append
    /// makes from now on lies at or after this location.
    pub(crate) fn end(&self) -> Location {
        let w = lock(&self.writer);
        Location {
            file: w.number,
            offset: u32::try_from(w.size).unwrap_or(u32::MAX),
        }
    }

    /// [`HistoryLog::iter_rev`] over only the files `keep` accepts (a list
    /// with `since` skips files holding only older messages unread).
    pub(crate) fn iter_rev_files(
        &self,
        before: Option<Location>,
        keep: impl Fn(u32) -> bool,
    ) -> impl Iterator<Item = Result<(Location, Vec<u8>), HistoryError>> + '_ {
        let (files, error) = match self.rev_plan(before) {
            Ok(mut files) => {
                files.retain(|(number, _)| keep(*number));
                (files, None)
            }
            Err(e) => (Vec::new(), Some(e)),
        };
        RevIter {
            log: self,
            files,
            current: None,
            error,
        }
    }

    /// The files `iter_rev` walks, oldest first, each with the end of the
    /// last frame to list.
    fn rev_plan(&self, before: Option<Location>) -> Result<Vec<(u32, u64)>, HistoryError> {
        // The writer's size, not the file's: an append in progress has bytes
        // on disk that are not frames yet (and may make a file above it).
        let (current, current_size) = {
            let w = lock(&self.writer);
            (w.number, w.size)
        };
        let mut plan = Vec::new();
        for (number, len) in self.files()? {
            let mut end = match number.cmp(&current) {
                std::cmp::Ordering::Less => len,
                std::cmp::Ordering::Equal => current_size,
                std::cmp::Ordering::Greater => continue,
            };
            if let Some(before) = before {
                if number > before.file {
                    continue;
                }
                if number == before.file {
                    end = end.min(u64::from(before.offset));
                }
            }
            // Offsets are 32-bit: a longer file is not ours, and the walk
            // reports it as corrupt rather than wrapping offsets.
            plan.push((number, end.min(u64::from(u32::MAX))));
        }
        Ok(plan)
    }

    /// The files present: (number, size in bytes), ascending.
    pub(crate) fn files(&self) -> Result<Vec<(u32, u64)>, HistoryError> {
        list_files(&self.dir)
    }

    /// The frames of a file, front to back (of the current write file, those
    /// appended so far): where each is, whether it was erased and the bytes
    /// it takes. Compaction weighs a file by them. A file whose frames do not
    /// walk end to end is corrupt.
    pub(crate) fn frames(&self, number: u32) -> Result<Vec<FrameInfo>, HistoryError> {
        let (file, len) = {
            let w = lock(&self.writer);
            let file = self.reader(number)?;
            let len = match number.cmp(&w.number) {
                std::cmp::Ordering::Less => file.metadata()?.len(),
                std::cmp::Ordering::Equal => w.size,
                std::cmp::Ordering::Greater => {
                    return Err(
                        invalid(format!("history file {number} is past the current one")).into(),
                    )
                }
            };
            (file, len.min(u64::from(u32::MAX)))
        };
        let mut frames = Vec::new();
        let mut pos = 0;
        while pos < len {
            let at = location(number, pos);
            let header = read_header(&file, pos)?.map_err(|reason| corrupt(at, reason))?;
            let bytes = OVERHEAD + u64::from(header.len);
            frames.push(FrameInfo {
                at,
                erased: header.erased,
                bytes,
            });
            pos += bytes;
        }
        Ok(frames)
    }

    /// End the current write file: the next append starts a new one. The
    /// file ended becomes one that compaction may rewrite. Returns its
    /// number; nothing happens to an empty file (returns None).
    pub(crate) fn rotate(&self) -> Result<Option<u32>, HistoryError> {
        let mut w = lock(&self.writer);
        if w.size == 0 {
            return Ok(None);
        }
        let ended = w.number;
        w.file.set_len(w.size)?;
        w.file.sync_data()?;
        let number = ended
            .checked_add(1)
            .filter(|n| *n <= MAX_FILE_NUMBER)
            .ok_or_else(|| invalid("history file numbers exhausted"))?;
        let file = create_file(&self.dir, number)?;
        lock(&self.readers).remove(&number);
        *w = Writer {
            number,
            file,
            size: 0,
        };
        Ok(Some(ended))
    }

    /// Delete a whole file (compaction, once the index points elsewhere).
    /// Refuses the current write file.
    pub(crate) fn remove_file(&self, file: u32) -> Result<(), HistoryError> {
        // Held so that no rotation makes `file` current meanwhile.
        let w = lock(&self.writer);
        if file == w.number {
            return Err(invalid(format!("history file {file} is the current write file")).into());
        }
        lock(&self.readers).remove(&file);
        match fs::remove_file(self.path(file)) {
            Err(e) if e.kind() == ErrorKind::NotFound => Err(HistoryError::MissingFile { file }),
            Err(e) => Err(e.into()),
            Ok(()) => Ok(sync_dir(&self.dir)?),
        }
    }

    fn path(&self, number: u32) -> PathBuf {
        file_path(&self.dir, number)
    }

    fn reader(&self, number: u32) -> Result<Arc<File>, HistoryError> {
        let mut readers = lock(&self.readers);
        if let Some(file) = readers.get(&number) {
            return Ok(file.clone());
        }
        let file = Arc::new(open_existing(&self.path(number), number, false)?);
        readers.insert(number, file.clone());
        Ok(file)
    }
}

impl Writer {
    /// Write `pending` after the frames so far.
    fn write(&mut self, pending: &mut Vec<u8>) -> io::Result<()> {
        self.file.write_all_at(pending, self.size)?;
        self.size += pending.len() as u64;
        pending.clear();
        Ok(())
    }
}

struct RevIter<'a> {
    log: &'a HistoryLog,
    /// Files still to walk, oldest first (taken from the back).
    files: Vec<(u32, u64)>,
    /// The file being walked and the end of the next frame to look at.
    current: Option<(u32, Arc<File>, u64)>,
    error: Option<HistoryError>,
}

impl Iterator for RevIter<'_> {
    type Item = Result<(Location, Vec<u8>), HistoryError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.error.take() {
            return Some(Err(e));
        }
        loop {
            let Some((number, file, end)) = self.current.take() else {
                let (number, end) = self.files.pop()?;
                match self.log.reader(number) {
                    Ok(file) => self.current = Some((number, file, end)),
                    // Removed by retention since the listing: nothing left there.
                    Err(HistoryError::MissingFile { .. }) => {}
                    Err(e) => return Some(Err(e)),
                }
                continue;
            };
            if end == 0 {
                continue;
            }
            // On an error, `current` stays empty: without a frame boundary
            // there is no way further back in this file, so on to the previous.
            let (start, header) = match step_back(&file, end) {
                Ok(Ok(found)) => found,
                Ok(Err(reason)) => {
                    let reason = format!("no frame ends before it ({reason})");
                    return Some(Err(corrupt(location(number, end), reason)));
                }
                Err(e) => return Some(Err(e.into())),
            };
            self.current = Some((number, file.clone(), start));
            let at = location(number, start);
            match live_payload(&file, at, &header) {
                Ok(None) => continue,
                Ok(Some(payload)) => return Some(Ok((at, payload))),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// Check the last file from its start and cut a damaged tail (everything
/// after the last valid frame); returns the size kept. Damage followed by a
/// valid frame is not a tail: a bit flip mid-file must not cost the records
/// after it.
fn recover_tail(file: &File, path: &Path) -> Result<u64, HistoryError> {
    let len = file.metadata()?.len();
    let (mut pos, mut kept) = (0, 0);
    while pos < len {
        match read_header(file, pos)? {
            Ok(header) => {
                let valid = header.erased || read_payload(file, pos, &header)?.is_some();
                pos += OVERHEAD + u64::from(header.len);
                if valid {
                    kept = pos;
                }
            }
            Err(reason) => match next_valid_frame(file, pos + 1, len)? {
                Some(next) => {
                    tracing::warn!(file = %path.display(), offset = pos, bytes = next - pos, reason,
                        "history: damaged bytes in the middle of the file, left in place");
                    pos = next;
                }
                None => break,
            },
        }
    }
    if kept < len {
        tracing::warn!(file = %path.display(), dropped = len - kept, "history: cutting a torn tail");
        file.set_len(kept)?;
        file.sync_all()?;
    }
    Ok(kept)
}

/// The first offset at or after `from` where a whole, valid frame starts.
fn next_valid_frame(file: &File, from: u64, len: u64) -> io::Result<Option<u64>> {
    let mut chunk = vec![0; 64 * 1024];
    let mut base = from;
    while base + OVERHEAD <= len {
        let n = usize::try_from(len - base).map_or(chunk.len(), |left| left.min(chunk.len()));
        file.read_exact_at(&mut chunk[..n], base)?;
        for (i, pair) in chunk[..n].windows(2).enumerate() {
            let at = base + i as u64;
            if pair == MAGIC {
                if let Ok(header) = read_header(file, at)? {
                    if header.erased || read_payload(file, at, &header)?.is_some() {
                        return Ok(Some(at));
                    }
                }
            }
        }
        // Again from the chunk's last byte: a magic may straddle two chunks.
        base += n as u64 - 1;
    }
    Ok(None)
}

/// The header at `offset`, checked against its trailer; `Ok(Err(reason))`
/// when there is no whole frame there.
fn read_header(file: &File, offset: u64) -> io::Result<Result<Header, &'static str>> {
    let mut raw = [0; HEADER as usize];
    if !read_full(file, &mut raw, offset)? {
        return Ok(Err("truncated header"));
    }
    let [m0, m1, flags, reserved, l0, l1, l2, l3, c0, c1, c2, c3] = raw;
    if [m0, m1] != MAGIC {
        return Ok(Err("bad magic"));
    }
    if flags & !FLAG_ERASED != 0 || reserved != 0 {
        return Ok(Err("unknown flags"));
    }
    let len = u32::from_le_bytes([l0, l1, l2, l3]);
    if len as usize >= MAX_RECORD {
        return Ok(Err("bad length"));
    }
    let mut trailer = [0; 4];
    if !read_full(file, &mut trailer, offset + HEADER + u64::from(len))? {
        return Ok(Err("truncated frame"));
    }
    if u32::from_le_bytes(trailer) != len {
        return Ok(Err("trailer does not match the header"));
    }
    Ok(Ok(Header {
        erased: flags & FLAG_ERASED != 0,
        len,
        crc: u32::from_le_bytes([c0, c1, c2, c3]),
    }))
}

/// The payload of a frame whose header checked out; `None` when its
/// checksum fails.
fn read_payload(file: &File, offset: u64, header: &Header) -> io::Result<Option<Vec<u8>>> {
    let mut payload = vec![0; header.len as usize];
    let whole = read_full(file, &mut payload, offset + HEADER)?;
    Ok((whole && crc32fast::hash(&payload) == header.crc).then_some(payload))
}

/// The payload of the frame at `at`, `None` if it is erased. A checksum
/// failure is checked against the header again: `erase` writes the header
/// before the zeros, so an erase may have run since `header` was read.
fn live_payload(
    file: &File,
    at: Location,
    header: &Header,
) -> Result<Option<Vec<u8>>, HistoryError> {
    let offset = u64::from(at.offset);
    if header.erased {
        return Ok(None);
    }
    if let Some(payload) = read_payload(file, offset, header)? {
        return Ok(Some(payload));
    }
    match read_header(file, offset)? {
        Ok(again) if again.erased => Ok(None),
        _ => Err(corrupt(at, "checksum mismatch")),
    }
}

/// The frame that ends at `end`, found through its trailer: (start, header).
fn step_back(file: &File, end: u64) -> io::Result<Result<(u64, Header), &'static str>> {
    let mut trailer = [0; 4];
    if end < OVERHEAD || !read_full(file, &mut trailer, end - 4)? {
        return Ok(Err("too short for a frame"));
    }
    let len = u64::from(u32::from_le_bytes(trailer));
    let Some(start) = end.checked_sub(OVERHEAD + len) else {
        return Ok(Err("bad trailer length"));
    };
    Ok(match read_header(file, start)? {
        Ok(header) if u64::from(header.len) == len => Ok((start, header)),
        Ok(_) => Err("header does not match the trailer"),
        Err(reason) => Err(reason),
    })
}

/// `pread` of exactly `buf.len()` bytes; `false` when the file ends first.
fn read_full(file: &File, buf: &mut [u8], offset: u64) -> io::Result<bool> {
    match file.read_exact_at(buf, offset) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

fn encode(out: &mut Vec<u8>, payload: &[u8]) {
    // Below MAX_RECORD (checked by `append`), so the length fits.
    let len = payload.len() as u32;
    out.extend_from_slice(&header_bytes(0, len, crc32fast::hash(payload)));
    out.extend_from_slice(payload);
    out.extend_from_slice(&len.to_le_bytes());
}

fn header_bytes(flags: u8, len: u32, crc: u32) -> [u8; HEADER as usize] {
    let mut raw = [0; HEADER as usize];
    raw[..2].copy_from_slice(&MAGIC);
    raw[2] = flags;
    raw[4..8].copy_from_slice(&len.to_le_bytes());
    raw[8..].copy_from_slice(&crc.to_le_bytes());
    raw
}

fn list_files(dir: &Path) -> Result<Vec<(u32, u64)>, HistoryError> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Some(number) = entry.file_name().to_str().and_then(file_number) else {
            continue;
        };
        match entry.metadata() {
            Ok(meta) => files.push((number, meta.len())),
            // Removed (retention) while we listed.
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    files.sort_unstable();
    Ok(files)
}

fn file_number(name: &str) -> Option<u32> {
    let digits = name.strip_suffix(".hist")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|n| *n > 0)
}

fn file_path(dir: &Path, number: u32) -> PathBuf {
    dir.join(format!("{number:08}.hist"))
}

/// A new, empty file, its directory entry fsync'd. A stray of that number
/// (created, then the directory fsync failed) was never indexed: emptied.
fn create_file(dir: &Path, number: u32) -> Result<File, HistoryError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(file_path(dir, number))?;
    sync_dir(dir)?;
    Ok(file)
}

fn open_existing(path: &Path, number: u32, write: bool) -> Result<File, HistoryError> {
    match OpenOptions::new().read(true).write(write).open(path) {
        Ok(file) => Ok(file),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            Err(HistoryError::MissingFile { file: number })
        }
        Err(e) => Err(e.into()),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Offsets in here come from a walk bounded to 32 bits (`rev_plan`).
fn location(file: u32, offset: u64) -> Location {
    Location {
        file,
        offset: u32::try_from(offset).unwrap_or(u32::MAX),
    }
}

fn corrupt(at: Location, reason: impl Into<String>) -> HistoryError {
    HistoryError::Corrupt {
        at,
        reason: reason.into(),
    }
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(ErrorKind::InvalidInput, message.into())
}

/// Nothing in this module panics holding a lock; were it to, the worst left
/// behind is frames nobody indexed, as after a failed append, so poisoning
/// is not passed on.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fresh directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static N: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "smsgate-history-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&dir);
            TempDir(dir)
        }

        fn open(&self, max_file_bytes: u64) -> HistoryLog {
            HistoryLog::open(&self.0, max_file_bytes).unwrap()
        }

        fn file(&self, number: u32) -> PathBuf {
            file_path(&self.0, number)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn record(seed: usize, len: usize) -> Vec<u8> {
        (0..len).map(|j| (seed * 31 + j * 7) as u8).collect()
    }

    fn append(log: &HistoryLog, records: &[Vec<u8>]) -> Vec<Location> {
        let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        log.append(&refs).unwrap()
    }

    fn all_rev(log: &HistoryLog, before: Option<Location>) -> Vec<(Location, Vec<u8>)> {
        log.iter_rev(before).collect::<Result<_, _>>().unwrap()
    }

    fn file_len(path: &Path) -> u64 {
        fs::metadata(path).unwrap().len()
    }

    #[test]
    fn is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<HistoryLog>();
    }

    #[test]
    fn location_bytes_round_trip_and_sort_in_archive_order() {
        let a = Location {
            file: 1,
            offset: 0xffff_0000,
        };
        let b = Location { file: 2, offset: 3 };
        assert_eq!(Location::from_bytes(a.to_bytes()), a);
        assert_eq!(Location::from_bytes(b.to_bytes()), b);
        assert!(a < b && a.to_bytes() < b.to_bytes());
    }

    #[test]
    fn append_then_read_back_varied_sizes() {
        let dir = TempDir::new();
        let log = dir.open(64 << 20);
        let sizes = [0, 1, 1024, 100 * 1024, 7, 0, 5000];
        let records: Vec<Vec<u8>> = (0..3)
            .flat_map(|round| sizes.iter().map(move |&len| (round, len)))
            .map(|(round, len)| record(round + len, len))
            .collect();
        let mut locations = append(&log, &records[..7]);
        locations.extend(append(&log, &records[7..]));
        assert!(locations.windows(2).all(|w| w[0] < w[1]));
        for (at, expected) in locations.iter().zip(&records) {
            assert_eq!(&log.read(*at).unwrap(), expected);
        }
        assert!(log.append(&[]).unwrap().is_empty());
        // Not a frame start, past the end, no such file: errors, not panics.
        let inside = Location {
            offset: locations[2].offset + 5,
            ..locations[2]
        };
        assert!(matches!(
            log.read(inside),
            Err(HistoryError::Corrupt { .. })
        ));
        let past = Location {
            file: 1,
            offset: u32::MAX,
        };
        assert!(matches!(log.read(past), Err(HistoryError::Corrupt { .. })));
        let nowhere = Location { file: 9, offset: 0 };
        assert!(matches!(
            log.read(nowhere),
            Err(HistoryError::MissingFile { file: 9 })
        ));
    }

    #[test]
    fn refuses_oversized_records_and_limits() {
        let dir = TempDir::new();
        assert!(HistoryLog::open(&dir.0, u64::from(u32::MAX) + 1).is_err());
        let log = dir.open(1 << 20);
        let big = vec![0u8; MAX_RECORD];
        assert!(matches!(
            log.append(&[b"ok", &big]),
            Err(HistoryError::Io(_))
        ));
        // Nothing of the refused batch was written.
        assert_eq!(log.files().unwrap(), vec![(1, 0)]);
    }

    #[test]
    fn rotation_spreads_records_over_files() {
        let dir = TempDir::new();
        let log = dir.open(4096);
        let records: Vec<Vec<u8>> = (0..60).map(|i| record(i, (i * 37) % 900)).collect();
        let mut locations = append(&log, &records[..25]);
        locations.extend(append(&log, &records[25..]));
        // A record larger than the limit goes alone into a fresh file.
        let huge = record(99, 10_000);
        let huge_at = append(&log, std::slice::from_ref(&huge))[0];
        let after = append(&log, &[b"after".to_vec()])[0];
        assert_eq!(huge_at.offset, 0);
        assert_eq!(
            after,
            Location {
                file: huge_at.file + 1,
                offset: 0
            }
        );

        assert!(locations.windows(2).all(|w| w[0] < w[1]));
        for (at, expected) in locations.iter().zip(&records) {
            assert_eq!(&log.read(*at).unwrap(), expected);
        }
        assert_eq!(log.read(huge_at).unwrap(), huge);
        let files = log.files().unwrap();
        let numbers: Vec<u32> = files.iter().map(|f| f.0).collect();
        assert_eq!(numbers, (1..=after.file).collect::<Vec<_>>());
        assert!(files.len() >= 5);
        for &(number, size) in &files {
            assert_eq!(size, file_len(&dir.file(number)));
            assert!(size <= 4096 || number == huge_at.file);
        }
    }

    #[test]
    fn reopen_keeps_records_and_appends_after_them() {
        let dir = TempDir::new();
        let first: Vec<Vec<u8>> = (0..10).map(|i| record(i, 300)).collect();
        let before = append(&dir.open(2048), &first);
        let log = dir.open(2048);
        for (at, expected) in before.iter().zip(&first) {
            assert_eq!(&log.read(*at).unwrap(), expected);
        }
        let second: Vec<Vec<u8>> = (10..14).map(|i| record(i, 300)).collect();
        let later = append(&log, &second);
        assert!(later[0] > *before.last().unwrap());
        for (at, expected) in before.iter().chain(&later).zip(first.iter().chain(&second)) {
            assert_eq!(&log.read(*at).unwrap(), expected);
        }
    }

    #[test]
    fn torn_tail_is_cut_at_open() {
        for torn in [true, false] {
            let dir = TempDir::new();
            let records: Vec<Vec<u8>> = (0..5).map(|i| record(i, 100)).collect();
            let locations = append(&dir.open(1 << 20), &records);
            let path = dir.file(1);
            let len = file_len(&path);
            let last = u64::from(locations[4].offset);
            if torn {
                // Half of the last frame reached the disk.
                let file = OpenOptions::new().write(true).open(&path).unwrap();
                file.set_len(last + (len - last) / 2).unwrap();
            } else {
                // A header that promises more than follows, then noise.
                let mut file = OpenOptions::new().append(true).open(&path).unwrap();
                file.write_all(&header_bytes(0, 50, 1)).unwrap();
                file.write_all(b"noise").unwrap();
            }
            let log = dir.open(1 << 20);
            let kept = if torn { 4 } else { 5 };
            assert_eq!(file_len(&path), if torn { last } else { len });
            for (at, expected) in locations.iter().zip(&records).take(kept) {
                assert_eq!(&log.read(*at).unwrap(), expected);
            }
            let new = append(&log, &[b"new".to_vec()])[0];
            assert_eq!(u64::from(new.offset), if torn { last } else { len });
            assert_eq!(log.read(new).unwrap(), b"new");
            assert_eq!(all_rev(&log, None).len(), kept + 1);
        }
    }

    #[test]
    fn corrupt_payload_fails_only_that_record() {
        let dir = TempDir::new();
        let records: Vec<Vec<u8>> = (0..5).map(|i| record(i, 200)).collect();
        let locations = append(&dir.open(1 << 20), &records);
        let path = dir.file(1);
        let mut bytes = fs::read(&path).unwrap();
        bytes[locations[2].offset as usize + HEADER as usize + 100] ^= 0x40;
        fs::write(&path, &bytes).unwrap();

        let log = dir.open(1 << 20);
        assert_eq!(file_len(&path), bytes.len() as u64);
        for (i, (at, expected)) in locations.iter().zip(&records).enumerate() {
            match log.read(*at) {
                Err(HistoryError::Corrupt { at: bad, .. }) if i == 2 => assert_eq!(bad, *at),
                result => assert_eq!(&result.unwrap(), expected),
            }
        }
        // The walk reports it and goes on past it.
        let walked: Vec<_> = log.iter_rev(None).collect();
        assert_eq!(walked.len(), 5);
        assert!(walked[2].is_err() && walked[3].is_ok() && walked[4].is_ok());
    }

    #[test]
    fn damaged_header_mid_file_is_not_taken_for_a_tail() {
        let dir = TempDir::new();
        let records: Vec<Vec<u8>> = (0..5).map(|i| record(i, 200)).collect();
        let locations = append(&dir.open(1 << 20), &records);
        let path = dir.file(1);
        let mut bytes = fs::read(&path).unwrap();
        bytes[locations[2].offset as usize] = b'X';
        fs::write(&path, &bytes).unwrap();

        let log = dir.open(1 << 20);
        assert_eq!(file_len(&path), bytes.len() as u64);
        assert!(matches!(
            log.read(locations[2]),
            Err(HistoryError::Corrupt { .. })
        ));
        for i in [0, 1, 3, 4] {
            assert_eq!(log.read(locations[i]).unwrap(), records[i]);
        }
        // The walk back stops at the damage: 4 and 3, then an error.
        let walked: Vec<_> = log.iter_rev(None).collect();
        assert_eq!(walked.len(), 3);
        assert!(walked[2].is_err());
    }

    #[test]
    fn erase_zeroes_the_payload_and_survives_reopen() {
        let dir = TempDir::new();
        let secret = b"SECRET-PAYLOAD-0612345678".to_vec();
        let records = vec![record(1, 50), secret.clone(), record(3, 50)];
        let locations = append(&dir.open(1 << 20), &records);
        {
            let log = dir.open(1 << 20);
            log.erase(&[locations[1]]).unwrap();
            log.erase(&[locations[1], locations[1]]).unwrap();
            let bytes = fs::read(dir.file(1)).unwrap();
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_slice()));
            let crc = crc32fast::hash(&secret).to_le_bytes();
            assert!(!bytes.windows(4).any(|w| w == crc));
        }
        for log in [dir.open(1 << 20), dir.open(1 << 20)] {
            let at = locations[1];
            assert!(matches!(log.read(at), Err(HistoryError::Erased { at: e }) if e == at));
            assert_eq!(log.read(locations[0]).unwrap(), records[0]);
            assert_eq!(log.read(locations[2]).unwrap(), records[2]);
            let walked: Vec<Location> = all_rev(&log, None).into_iter().map(|r| r.0).collect();
            assert_eq!(walked, vec![locations[2], locations[0]]);
        }
        // Not a frame: refused, nothing overwritten.
        let log = dir.open(1 << 20);
        let inside = Location {
            offset: locations[2].offset + 3,
            ..locations[2]
        };
        assert!(matches!(
            log.erase(&[inside]),
            Err(HistoryError::Corrupt { .. })
        ));
        assert_eq!(log.read(locations[2]).unwrap(), records[2]);
    }

    #[test]
    fn iter_rev_newest_first_before_and_across_removed_file() {
        let dir = TempDir::new();
        let log = dir.open(4096);
        let records: Vec<Vec<u8>> = (0..60).map(|i| record(i, 300)).collect();
        let locations = append(&log, &records);
        let expected = |range: std::ops::Range<usize>| -> Vec<(Location, Vec<u8>)> {
            range
                .rev()
                .map(|i| (locations[i], records[i].clone()))
                .filter(|(at, _)| at.file != 2)
                .collect()
        };
        let everything: Vec<_> = (0..60)
            .rev()
            .map(|i| (locations[i], records[i].clone()))
            .collect();
        assert_eq!(all_rev(&log, None), everything);
        let cut = &everything[60 - 30..];
        assert_eq!(all_rev(&log, Some(locations[30])), cut);
        assert_eq!(all_rev(&log, Some(locations[0])), vec![]);

        log.remove_file(2).unwrap();
        assert_eq!(all_rev(&log, None), expected(0..60));
        assert_eq!(all_rev(&log, Some(locations[30])), expected(0..30));
        // A cursor inside the removed file goes on below it.
        let in_two = *locations.iter().find(|at| at.file == 2).unwrap();
        assert!(all_rev(&log, Some(in_two))
            .iter()
            .all(|(at, _)| at.file == 1));
    }

    #[test]
    fn remove_file_refuses_current_and_its_records_go_missing() {
        let dir = TempDir::new();
        let log = dir.open(1024);
        let locations = append(&log, &(0..10).map(|i| record(i, 200)).collect::<Vec<_>>());
        let current = locations.last().unwrap().file;
        assert!(current > 2);
        assert!(matches!(log.remove_file(current), Err(HistoryError::Io(_))));
        log.remove_file(1).unwrap();
        assert!(matches!(
            log.read(locations[0]),
            Err(HistoryError::MissingFile { file: 1 })
        ));
        assert!(matches!(
            log.remove_file(1),
            Err(HistoryError::MissingFile { file: 1 })
        ));
        assert!(log.files().unwrap().iter().all(|f| f.0 != 1));
        assert!(log.read(*locations.last().unwrap()).is_ok());
    }

    #[test]
    fn bytes_past_the_last_append_are_not_frames() {
        // What an append in progress (or a failed one) leaves on disk.
        let dir = TempDir::new();
        let log = dir.open(1 << 20);
        let records: Vec<Vec<u8>> = (0..3).map(|i| record(i, 100)).collect();
        let locations = append(&log, &records);
        let mut file = OpenOptions::new().append(true).open(dir.file(1)).unwrap();
        file.write_all(&header_bytes(0, 500, 0)).unwrap();
        file.write_all(&[7; 100]).unwrap();
        let walked: Vec<Location> = all_rev(&log, None).into_iter().map(|r| r.0).collect();
        assert_eq!(walked, locations.iter().rev().copied().collect::<Vec<_>>());
        // The next append writes over them.
        let new = append(&log, &[b"new".to_vec()])[0];
        assert_eq!(new.offset, locations[2].offset + OVERHEAD as u32 + 100);
        assert_eq!(log.read(new).unwrap(), b"new");
    }

    #[test]
    fn reads_of_the_write_file_during_appends() {
        let dir = TempDir::new();
        let log = Arc::new(dir.open(64 << 10));
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = {
            let log = log.clone();
            std::thread::spawn(move || {
                for batch in 0..40 {
                    let records: Vec<Vec<u8>> =
                        (0..5).map(|i| record(batch * 5 + i, 500)).collect();
                    for (at, r) in append(&log, &records).into_iter().zip(records) {
                        tx.send((at, r)).unwrap();
                    }
                }
            })
        };
        for (at, expected) in rx {
            assert_eq!(log.read(at).unwrap(), expected);
            assert!(log.iter_rev(None).take(3).all(|r| r.is_ok()));
        }
        writer.join().unwrap();
    }

    #[test]
    fn erase_while_reading_gives_erased_never_corrupt() {
        // Large payloads: the eraser's zeros take long enough to meet readers.
        let dir = TempDir::new();
        let log = Arc::new(dir.open(64 << 20));
        let records: Vec<Vec<u8>> = (1..=100).map(|i| vec![i as u8; 256 << 10]).collect();
        let locations = append(&log, &records);
        let eraser = {
            let (log, locations) = (log.clone(), locations.clone());
            std::thread::spawn(move || locations.iter().for_each(|at| log.erase(&[*at]).unwrap()))
        };
        for _ in 0..20 {
            for (at, expected) in locations.iter().zip(&records) {
                match log.read(*at) {
                    Ok(payload) => assert_eq!(&payload, expected),
                    Err(e) => assert!(matches!(e, HistoryError::Erased { .. }), "{e}"),
                }
            }
        }
        eraser.join().unwrap();
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(48))]
        /// Whatever a crash leaves after the last frame (a cut, a plausible
        /// header, noise), `open` works and keeps every record before it.
        #[test]
        fn garbage_after_the_last_frame_never_loses_records(
            sizes in proptest::collection::vec(0usize..300, 1..6),
            cut in 0u64..400,
            header in proptest::option::of((0u8..2, 0u32..600, proptest::num::u32::ANY)),
            garbage in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
        ) {
            let dir = TempDir::new();
            let records: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, &len)| record(i, len)).collect();
            let locations = append(&dir.open(1 << 20), &records);
            let path = dir.file(1);
            let len = file_len(&path);
            let last = u64::from(locations[records.len() - 1].offset);
            let cut = cut.min(len - last);
            let file = OpenOptions::new().write(true).open(&path).unwrap();
            file.set_len(len - cut).unwrap();
            let mut tail = Vec::new();
            if let Some((flags, n, crc)) = header {
                tail.extend_from_slice(&header_bytes(flags, n, crc));
            }
            tail.extend_from_slice(&garbage);
            file.write_all_at(&tail, len - cut).unwrap();
            drop(file);

            let log = HistoryLog::open(&dir.0, 1 << 20).unwrap();
            let kept = if cut == 0 { records.len() } else { records.len() - 1 };
            for (at, expected) in locations.iter().zip(&records).take(kept) {
                proptest::prop_assert_eq!(&log.read(*at).unwrap(), expected);
            }
            let new = append(&log, &[b"new".to_vec()])[0];
            proptest::prop_assert_eq!(log.read(new).unwrap(), b"new".to_vec());
            let walked: Vec<_> = log.iter_rev(None).collect::<Result<_, _>>().unwrap();
            proptest::prop_assert_eq!(walked.len(), kept + 1);
        }
    }
}
