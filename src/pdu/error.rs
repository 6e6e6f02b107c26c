//! The codec's one error type: every refusal names what is wrong and where.

/// Why a PDU could not be decoded or a message could not be encoded.
///
/// Offsets count octets from the start of the buffer handed to the decoder (the
/// SMSC field included when present), so an operator can find the byte in a dump.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    #[error("non-hex character {found:?} at position {position}")]
    NonHex { position: usize, found: char },
    #[error("odd number of hex digits ({0}): a PDU is whole octets")]
    OddHexLength(usize),
    #[error("empty PDU")]
    Empty,
    #[error("truncated at octet {offset}: {field} needs {needed} octet(s), {available} left")]
    Truncated {
        offset: usize,
        field: &'static str,
        needed: usize,
        available: usize,
    },
    #[error("{field} at octet {offset}: {reason}")]
    Invalid {
        offset: usize,
        field: &'static str,
        reason: String,
    },
    #[error("invalid number {number:?}: {reason}")]
    InvalidNumber {
        number: String,
        reason: &'static str,
    },
    #[error("character {0:?} is not in the GSM 7-bit alphabet")]
    NotGsm7(char),
    #[error("text needs {parts} parts, over the limit of {max}")]
    TooManyParts { parts: usize, max: usize },
    #[error("{0}")]
    Option(String),
}

pub type Result<T> = std::result::Result<T, PduError>;

/// A cursor over the octets of a PDU that turns running out of input into
/// [`PduError::Truncated`] with the offset and the field being read.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    pub(crate) fn offset(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8> {
        Ok(self.take(1, field)?[0])
    }

    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(PduError::Truncated {
                offset: self.pos,
                field,
                needed: n,
                available: self.remaining(),
            });
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }
}
