//! 23.038 Annex A: national language locking shift (A.3) and single shift (A.2) tables.
//!
//! Pure data. The GSM 7-bit codec picks a table from the national language
//! identifier carried in the user data header (23.040 §9.2.3.24.15 locking shift,
//! §9.2.3.24.16 single shift; identifiers in 23.038 §6.2.1.2.4) and indexes it
//! by septet. The default alphabet (§6.2.1) and the default extension table
//! (§6.2.1.1), identifier 0, belong to the caller and are not repeated here.
//!
//! # Tables held
//!
//! | id | language   | locking shift | single shift |
//! |----|------------|---------------|--------------|
//! | 1  | Turkish    | A.3.1         | A.2.1        |
//! | 2  | Spanish    | none (A.3.2 is void) | A.2.2 |
//! | 3  | Portuguese | A.3.3         | A.2.3        |
//! | 4  | Bengali    | not held (see below) | A.2.4 |
//! | 5  | Gujarati   | not held      | A.2.5        |
//! | 6  | Hindi      | A.3.6         | A.2.6        |
//! | 7  | Kannada    | not held      | A.2.7        |
//! | 8  | Malayalam  | not held      | A.2.8        |
//! | 9  | Oriya      | not held      | A.2.9        |
//! | 10 | Punjabi    | not held      | A.2.10       |
//! | 11 | Tamil      | not held      | A.2.11       |
//! | 12 | Telugu     | not held      | A.2.12       |
//! | 13 | Urdu       | A.3.13        | A.2.13       |
//!
//! The locking shift tables for identifiers 4, 5, 7, 8, 9, 10, 11 and 12 leave
//! some codes unassigned, and `[char; 128]` has no way to say "unassigned"
//! without inventing a character the spec does not contain, so those tables
//! are left out rather than padded. Hindi (A.3.6) and Urdu (A.3.13) assign all
//! 128 codes and are held.
//!
//! # Conventions
//!
//! - Locking tables hold `'\u{1B}'` at 0x1B: that code is the escape to the
//!   single shift table (§6.2.1.2.3), not a character.
//! - Single shift tables hold `None` at 0x1B: §6.2.1.1 reserves ESC ESC for a
//!   further extension table and tells the receiver to show a space; that
//!   rule is the caller's.
//! - 0x0D is `None` in every single shift table: the spec marks it CR2, a
//!   control code with no character.
//! - 0x0A in every single shift table is the page break, mapped to FORM FEED
//!   U+000C as for the default extension table.
//! - Any other `None` in a single shift table is a code the table does not
//!   define; §6.2.1.1 says to show the locking (or default) table's character
//!   for that code instead.
//! - A.2.4 to A.2.13 repeat two characters, and so do these tables: '¡' at
//!   0x13 and 0x15, '*' at 0x0B and 0x18. An encoder must pick one of each.
//!
//! # Sources
//!
//! Every table was compared cell by cell against two independent
//! transcriptions of 23.038, and both agree with what is held here:
//!
//! - AOSP `GsmAlphabet.java` (`sLanguageTables` / `sLanguageShiftTables`,
//!   23.038 V9.1.1);
//! - the Python `gsmcodecs` package 1.0.0 (23.038 V18.0.0 look-up tables).
//!
//! Where those two disagreed, CyberChef's GSM-7 tables (23.038 V16.0.0) were
//! used to break the tie:
//!
//! - Hindi and Urdu locking 0x2C: `gsmcodecs` has an apostrophe; AOSP and
//!   CyberChef have ',' (the comma, as in every other table here). ',' is held.
//! - Telugu single shift 0x65: `gsmcodecs` leaves it empty; AOSP and
//!   CyberChef have '€', like every other single shift table. '€' is held.
//!
//! Spanish single shift 0x09 is 'ç' (U+00E7, small c with cedilla), not 'Ç':
//! all three sources, and Symbian's Spanish converter documentation, agree.
//! The default alphabet has 'Ç' (U+00C7) at 0x09.

/// Builds a single shift table from the cells the spec defines; every other
/// cell is `None`.
///
/// Only called in `static` initialisers, so it runs at compile time: a septet
/// above 0x7F, the reserved 0x1B, or a septet listed twice fails the build. It
/// never runs, and so never panics, at run time.
const fn single_shift_table(cells: &[(u8, char)]) -> [Option<char>; 128] {
    let mut table = [None; 128];
    let mut i = 0;
    while i < cells.len() {
        let (septet, ch) = cells[i];
        let slot = septet as usize;
        assert!(
            slot < 128 && slot != 0x1B && table[slot].is_none(),
            "single shift cell out of range, at ESC, or listed twice"
        );
        table[slot] = Some(ch);
        i += 1;
    }
    table
}

/// Locking shift table for a national language identifier (23.038 §6.2.1.2.4),
/// indexed by septet 0..=127. Position 0x1B holds '\u{1B}' (the escape to the
/// single shift table). `None` for identifier 0 (the default alphabet, which the
/// caller owns) and for identifiers without a locking table here.
pub fn locking_shift(id: u8) -> Option<&'static [char; 128]> {
    match id {
        1 => Some(&TURKISH_LOCKING),
        // 2, Spanish: A.3.2 is void, Spanish has only a single shift table.
        3 => Some(&PORTUGUESE_LOCKING),
        6 => Some(&HINDI_LOCKING),
        13 => Some(&URDU_LOCKING),
        _ => None,
    }
}

/// Single shift table for a national language identifier, indexed by the septet
/// that follows ESC (0x1B); `None` entries are codes the table does not define.
/// `None` for identifier 0 (the default extension table, owned by the caller) and
/// for identifiers without a single shift table here.
pub fn single_shift(id: u8) -> Option<&'static [Option<char>; 128]> {
    match id {
        1 => Some(&TURKISH_SINGLE),
        2 => Some(&SPANISH_SINGLE),
        3 => Some(&PORTUGUESE_SINGLE),
        4 => Some(&BENGALI_SINGLE),
        5 => Some(&GUJARATI_SINGLE),
        6 => Some(&HINDI_SINGLE),
        7 => Some(&KANNADA_SINGLE),
        8 => Some(&MALAYALAM_SINGLE),
        9 => Some(&ORIYA_SINGLE),
        10 => Some(&PUNJABI_SINGLE),
        11 => Some(&TAMIL_SINGLE),
        12 => Some(&TELUGU_SINGLE),
        13 => Some(&URDU_SINGLE),
        _ => None,
    }
}

// Tables below are laid out as in Annex A: locking tables row by row from the
// septet in the comment; single shift tables as (septet, character) for each
// defined cell, one line per spec column (high nibble). Scripts other than
// Latin and Greek are written as code points, as the spec prints them.

/// A.3.1 Turkish national language locking shift table (identifier 1).
#[rustfmt::skip]
static TURKISH_LOCKING: [char; 128] = [
    /* 0x00 */ '@', '£', '$', '¥', '€', 'é', 'ù', 'ı', 'ò', 'Ç', '\n', 'Ğ', 'ğ', '\r', 'Å', 'å',
    /* 0x10 */ 'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1b}', 'Ş', 'ş', 'ß', 'É',
    /* 0x20 */ ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/',
    /* 0x30 */ '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?',
    /* 0x40 */ 'İ', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O',
    /* 0x50 */ 'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§',
    /* 0x60 */ 'ç', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
    /* 0x70 */ 'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à',
];

/// A.3.3 Portuguese national language locking shift table (identifier 3).
#[rustfmt::skip]
static PORTUGUESE_LOCKING: [char; 128] = [
    /* 0x00 */ '@', '£', '$', '¥', 'ê', 'é', 'ú', 'í', 'ó', 'ç', '\n', 'Ô', 'ô', '\r', 'Á', 'á',
    /* 0x10 */ 'Δ', '_', 'ª', 'Ç', 'À', '∞', '^', '\\', '€', 'Ó', '|', '\u{1b}', 'Â', 'â', 'Ê', 'É',
    /* 0x20 */ ' ', '!', '"', '#', 'º', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/',
    /* 0x30 */ '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?',
    /* 0x40 */ 'Í', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O',
    /* 0x50 */ 'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ã', 'Õ', 'Ú', 'Ü', '§',
    /* 0x60 */ '~', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
    /* 0x70 */ 'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ã', 'õ', '`', 'ü', 'à',
];

/// A.3.6 Hindi national language locking shift table (identifier 6).
#[rustfmt::skip]
static HINDI_LOCKING: [char; 128] = [
    /* 0x00 */ '\u{0901}', '\u{0902}', '\u{0903}', '\u{0905}', '\u{0906}', '\u{0907}', '\u{0908}', '\u{0909}',
    /* 0x08 */ '\u{090A}', '\u{090B}', '\n', '\u{090C}', '\u{090D}', '\r', '\u{090E}', '\u{090F}',
    /* 0x10 */ '\u{0910}', '\u{0911}', '\u{0912}', '\u{0913}', '\u{0914}', '\u{0915}', '\u{0916}', '\u{0917}',
    /* 0x18 */ '\u{0918}', '\u{0919}', '\u{091A}', '\u{1b}', '\u{091B}', '\u{091C}', '\u{091D}', '\u{091E}',
    /* 0x20 */ ' ', '!', '\u{091F}', '\u{0920}', '\u{0921}', '\u{0922}', '\u{0923}', '\u{0924}',
    /* 0x28 */ ')', '(', '\u{0925}', '\u{0926}', ',', '\u{0927}', '.', '\u{0928}',
    /* 0x30 */ '0', '1', '2', '3', '4', '5', '6', '7',
    /* 0x38 */ '8', '9', ':', ';', '\u{0929}', '\u{092A}', '\u{092B}', '?',
    /* 0x40 */ '\u{092C}', '\u{092D}', '\u{092E}', '\u{092F}', '\u{0930}', '\u{0931}', '\u{0932}', '\u{0933}',
    /* 0x48 */ '\u{0934}', '\u{0935}', '\u{0936}', '\u{0937}', '\u{0938}', '\u{0939}', '\u{093C}', '\u{093D}',
    /* 0x50 */ '\u{093E}', '\u{093F}', '\u{0940}', '\u{0941}', '\u{0942}', '\u{0943}', '\u{0944}', '\u{0945}',
    /* 0x58 */ '\u{0946}', '\u{0947}', '\u{0948}', '\u{0949}', '\u{094A}', '\u{094B}', '\u{094C}', '\u{094D}',
    /* 0x60 */ '\u{0950}', 'a', 'b', 'c', 'd', 'e', 'f', 'g',
    /* 0x68 */ 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
    /* 0x70 */ 'p', 'q', 'r', 's', 't', 'u', 'v', 'w',
    /* 0x78 */ 'x', 'y', 'z', '\u{0972}', '\u{097B}', '\u{097C}', '\u{097E}', '\u{097F}',
];

/// A.3.13 Urdu national language locking shift table (identifier 13).
#[rustfmt::skip]
static URDU_LOCKING: [char; 128] = [
    /* 0x00 */ '\u{0627}', '\u{0622}', '\u{0628}', '\u{067B}', '\u{0680}', '\u{067E}', '\u{06A6}', '\u{062A}',
    /* 0x08 */ '\u{06C2}', '\u{067F}', '\n', '\u{0679}', '\u{067D}', '\r', '\u{067A}', '\u{067C}',
    /* 0x10 */ '\u{062B}', '\u{062C}', '\u{0681}', '\u{0684}', '\u{0683}', '\u{0685}', '\u{0686}', '\u{0687}',
    /* 0x18 */ '\u{062D}', '\u{062E}', '\u{062F}', '\u{1b}', '\u{068C}', '\u{0688}', '\u{0689}', '\u{068A}',
    /* 0x20 */ ' ', '!', '\u{068F}', '\u{068D}', '\u{0630}', '\u{0631}', '\u{0691}', '\u{0693}',
    /* 0x28 */ ')', '(', '\u{0699}', '\u{0632}', ',', '\u{0696}', '.', '\u{0698}',
    /* 0x30 */ '0', '1', '2', '3', '4', '5', '6', '7',
    /* 0x38 */ '8', '9', ':', ';', '\u{069A}', '\u{0633}', '\u{0634}', '?',
    /* 0x40 */ '\u{0635}', '\u{0636}', '\u{0637}', '\u{0638}', '\u{0639}', '\u{0641}', '\u{0642}', '\u{06A9}',
    /* 0x48 */ '\u{06AA}', '\u{06AB}', '\u{06AF}', '\u{06B3}', '\u{06B1}', '\u{0644}', '\u{0645}', '\u{0646}',
    /* 0x50 */ '\u{06BA}', '\u{06BB}', '\u{06BC}', '\u{0648}', '\u{06C4}', '\u{06D5}', '\u{06C1}', '\u{06BE}',
    /* 0x58 */ '\u{0621}', '\u{06CC}', '\u{06D0}', '\u{06D2}', '\u{064D}', '\u{0650}', '\u{064F}', '\u{0657}',
    /* 0x60 */ '\u{0654}', 'a', 'b', 'c', 'd', 'e', 'f', 'g',
    /* 0x68 */ 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
    /* 0x70 */ 'p', 'q', 'r', 's', 't', 'u', 'v', 'w',
    /* 0x78 */ 'x', 'y', 'z', '\u{0655}', '\u{0651}', '\u{0653}', '\u{0656}', '\u{0670}',
];

/// A.2.1 Turkish national language single shift table (identifier 1).
#[rustfmt::skip]
static TURKISH_SINGLE: [Option<char>; 128] = single_shift_table(&[
    (0x0A, '\u{c}'),
    (0x14, '^'),
    (0x28, '{'), (0x29, '}'), (0x2F, '\\'),
    (0x3C, '['), (0x3D, '~'), (0x3E, ']'),
    (0x40, '|'), (0x47, 'Ğ'), (0x49, 'İ'),
    (0x53, 'Ş'),
    (0x63, 'ç'), (0x65, '€'), (0x67, 'ğ'), (0x69, 'ı'),
    (0x73, 'ş'),
]);

/// A.2.2 Spanish national language single shift table (identifier 2).
#[rustfmt::skip]
static SPANISH_SINGLE: [Option<char>; 128] = single_shift_table(&[
    (0x09, 'ç'), (0x0A, '\u{c}'),
    (0x14, '^'),
    (0x28, '{'), (0x29, '}'), (0x2F, '\\'),
    (0x3C, '['), (0x3D, '~'), (0x3E, ']'),
    (0x40, '|'), (0x41, 'Á'), (0x49, 'Í'), (0x4F, 'Ó'),
    (0x55, 'Ú'),
    (0x61, 'á'), (0x65, '€'), (0x69, 'í'), (0x6F, 'ó'),
    (0x75, 'ú'),
]);

/// A.2.3 Portuguese national language single shift table (identifier 3).
#[rustfmt::skip]
static PORTUGUESE_SINGLE: [Option<char>; 128] = single_shift_table(&[
    (0x05, 'ê'), (0x09, 'ç'), (0x0A, '\u{c}'), (0x0B, 'Ô'), (0x0C, 'ô'), (0x0E, 'Á'),
    (0x0F, 'á'),
    (0x12, 'Φ'), (0x13, 'Γ'), (0x14, '^'), (0x15, 'Ω'), (0x16, 'Π'), (0x17, 'Ψ'),
    (0x18, 'Σ'), (0x19, 'Θ'), (0x1F, 'Ê'),
    (0x28, '{'), (0x29, '}'), (0x2F, '\\'),
    (0x3C, '['), (0x3D, '~'), (0x3E, ']'),
    (0x40, '|'), (0x41, 'À'), (0x49, 'Í'), (0x4F, 'Ó'),
    (0x55, 'Ú'), (0x5B, 'Ã'), (0x5C, 'Õ'),
    (0x61, 'Â'), (0x65, '€'), (0x69, 'í'), (0x6F, 'ó'),
    (0x75, 'ú'), (0x7B, 'ã'), (0x7C, 'õ'), (0x7F, 'â'),
]);

/// A.2.4 Bengali national language single shift table (identifier 4).
#[rustfmt::skip]
static BENGALI_SINGLE: [Option<char>; 128] = single_shift_table(&[
    (0x00, '@'), (0x01, '£'), (0x02, '$'), (0x03, '¥'), (0x04, '¿'), (0x05, '"'),
    (0x06, '¤'), (0x07, '%'), (0x08, '&'), (0x09, '\''), (0x0A, '\u{c}'), (0x0B, '*'),
    (0x0C, '+'), (0x0E, '-'), (0x0F, '/'),
    (0x10, '<'), (0x11, '='), (0x12, '>'), (0x13, '¡'), (0x14, '^'), (0x15, '¡'),
    (0x16, '_'), (0x17, '#'), (0x18, '*'), (0x19, '\u{09E6}'), (0x1A, '\u{09E7}'), (0x1C, '\u{09E8}'),
    (0x1D, '\u{09E9}'), (0x1E, '\u{09EA}'), (0x1F, '\u{09EB}'),
    (0x20, '\u{09EC}'), (0x21, '\u{09ED}'), (0x22, '\u{09EE}'), (0x23, '\u{09EF}'), (0x24, '\u{09DF}'), (0x25, '\u{09E0}'),
    (0x26, '\u{09E1}'), (0x27, '\u{09E2}'), (0x28, '{'), (0x29, '}'), (0x2A, '\u{09E3}'), (0x2B, '\u{09F2}'),
    (0x2C, '\u{09F3}'), (0x2D, '\u{09F4}'), (0x2E, '\u{09F5}'), (0x2F, '\\'),
    (0x30, '\u{09F6}'), (0x31, '\u{09F7}'), (0x32, '\u{09F8}'), (0x33, '\u{09F9}'), (0x34, '\u{09FA}'), (0x3C, '['),
    (0x3D, '~'), (0x3E, ']'),
    (0x40, '|'), (0x41, 'A'), (0x42, 'B'), (0x43, 'C'), (0x44, 'D'), (0x45, 'E'),
    (0x46, 'F'), (0x47, 'G'), (0x48, 'H'), (0x49, 'I'), (0x4A, 'J'), (0x4B, 'K'),
    (0x4C, 'L'), (0x4D, 'M'), (0x4E, 'N'), (0x4F, 'O'),
    (0x50, 'P'), (0x51, 'Q'), (0x52, 'R'), (0x53, 'S'), (0x54, 'T'), (0x55, 'U'),
    (0x56, 'V'), (0x57, 'W'), (0x58, 'X'), (0x59, 'Y'), (0x5A, 'Z'),
    (0x65, '€'),
]);

/// A.2.5 Gujarati national language single shift table (identifier 5).
#[rustfmt::skip]
static GUJARATI_SINGLE: [Option<char>; 128] = single_shift_table(&[
    (0x00, '@'), (0x01, '£'), (0x02, '$'), (0x03, '¥'), (0x04, '¿'), (0x05, '"'),
    (0x06, '¤'), (0x07, '%'), (0x08, '&'), (0x09, '\''), (0x0A, '\u{c}'), (0x0B, '*'),
    (0x0C, '+'), (0x0E, '-'), (0x0F, '/'),
    (0x10, '<'), (0x11, '='), (0x12, '>'), (0x13, '¡'), (0x14, '^'), (0x15, '¡'),
    (0x16, '_'), (0x17, '#'), (0x18, '*'), (0x19, '\u{0964}'), (0x1A, '\u{0965}'), (0x1C, '\u{0AE6}'),
    (0x1D, '\u{0AE7}'), (0x1E, '\u{0AE8}'), (0x1F, '\u{0AE9}'),
    (0x20, '\u{0AEA}'), (0x21, '\u{0AEB}'), (0x22, '\u{0AEC}'), (0x23, '\u{0AED}'), (0x24, '\u{0AEE}'), (0x25, '\u{0AEF}'),
    (0x28, '{'), (0x29, '}'), (0x2F, '\\'),
    (0x3C, '['), (0x3D, '~'), (0x3E, ']'),
    (0x40, '|'), (0x41, 'A'), (0x42, 'B'), (0x43, 'C'), (0x44, 'D'), (0x45, 'E'),
    (0x46, 'F'), (0x47, 'G'), (0x48, 'H'), (0x49, 'I'), (0x4A, 'J'), (0x4B, 'K'),
    (0x4C, 'L'), (0x4D, 'M'), (0x4E, 'N'), (0x4F, 'O'),
    (0x50, 'P'), (0x51, 'Q'), (0x52, 'R'), (0x53, 'S'), (0x54, 'T'), (0x55, 'U'),
    (0x56, 'V'), (0x57, 'W'), (0x58, 'X'), (0x59, 'Y'), (0x5A, 'Z'),
    (0x65, '€'),
]);

/// A.2.6 Hindi national language single shift table (identifier 6).
#[rustfmt::skip]
static HINDI_SINGLE: [Option<char>; 128] = single_shift_table(&[
    (0x00, '@'), (0x01, '£'), (0x02, '$'), (0x03, '¥'), (0x04, '¿'), (0x05, '"'),
    (0x06, '¤'), (0x07, '%'), (0x08, '&'), (0x09, '\''), (0x0A, '\u{c}'), (0x0B, '*'),
    (0x0C, '+'), (0x0E, '-'), (0x0F, '/'),
    (0x10, '<'), (0x11, '='), (0x12, '>'), (0x13, '¡'), (0x14, '^'), (0x15, '¡'),
    (0x16, '_'), (0x17, '#'), (0x18, '*'), (0x19, '\u{0964}'), (0x1A, '\u{0965}'), (0x1C, '\u{0966}'),
    (0x1D, '\u{0967}'), (0x1E, '\u{0968}'), (0x1F, '\u{0969}'),
    (0x20, '\u{096A}'), (0x21, '\u{096B}'), (0x22, '\u{096C}'), (0x23, '\u{096D}'), (0x24, '\u{096E}'), (0x25, '\u{096F}'),
    (0x26, '\u{0951}'), (0x27, '\u{0952}'), (0x28, '{'), (0x29, '}'), (0x2A, '\u{0953}'), (0x2B, '\u{0954}'),
    (0x2C, '\u{0958}'), (0x2D, '\u{0959}'), (0x2E, '\u{095A}'), (0x2F, '\\'),
    (0x30, '\u{095B}'), (0x31, '\u{095C}'), (0x32, '\u{095D}'), (0x33, '\u{095E}'), (0x34, '\u{095F}'), (0x35, '\u{0960}'),
    (0x36, '\u{0961}'), (0x37, '\u{0962}'), (0x38, '\u{0963}'), (0x39, '\u{0970}'), (0x3A, '\u{0971}'), (0x3C, '['),
    (0x3D, '~'), (0x3E, ']'),
    (0x40, '|'), (0x41, 'A'), (0x42, 'B'), (0x43, 'C'), (0x44, 'D'), (0x45, 'E'),
    (0x46, 'F'), (0x47, 'G'), (0x48, 'H'), (0x49, 'I'), (0x4A, 'J'), (0x4B, 'K'),
    (0x4C, 'L'), (0x4D, 'M'), (0x4E, 'N'), (0x4F, 'O'),
    (0x50, 'P'), (0x51, 'Q'), (0x52, 'R'), (0x53, 'S'), (0x54, 'T'), (0x55, 'U'),
    (0x56, 'V'), (0x57, 'W'), (0x58, 'X'), (0x59, 'Y'), (0x5A, 'Z'),
    (0x65, '€'),
]);

/// A.2.7 Kannada national language single shift table (identifier 7).
#[rustfmt::skip]
static KANNADA_SINGLE: [Option<char>; 128] = single_shift_table(&[
    (0x00, '@'), (0x01, '£'), (0x02, '$'), (0x03, '¥'), (0x04, '¿'), (0x05, '"'),
    (0x06, '¤'), (0x07, '%'), (0x08, '&'), (0x09, '\''), (0x0A, '\u{c}'), (0x0B, '*'),
    (0x0C, '+'), (0x0E, '-'), (0x0F, '/'),
    (0x10, '<'), (0x11, '='), (0x12, '>'), (0x13, '¡'), (0x14, '^'), (0x15, '¡'),
    (0x16, '_'), (0x17, '#'), (0x18, '*'), (0x19, '\u{0964}'), (0x1A, '\u{0965}'), (0x1C, '\u{0CE6}'),
    (0x1D, '\u{0CE7}'), (0x1E, '\u{0CE8}'), (0x1F, '\u{0CE9}'),
    (0x20, '\u{0CEA}'), (0x21, '\u{0CEB}'), (0x22, '\u{0CEC}'), (0x23, '\u{0CED}'), (0x24, '\u{0CEE}'), (0x25, '\u{0CEF}'),
    (0x26, '\u{0CDE}'), (0x27, '\u{0CF1}'), (0x28, '{'), (0x29, '}'), (0x2A, '\u{0CF2}'), (0x2F, '\\'),
    (0x3C, '['), (0x3D, '~'), (0x3E, ']'),
    (0x40, '|'), (0x41, 'A'), (0x42, 'B'), (0x43, 'C'), (0x44, 'D'), (0x45, 'E'),
    (0x46, 'F'), (0x47, 'G'), (0x48, 'H'), (0x49, 'I'), (0x4A, 'J'), (0x4B, 'K'),
    (0x4C, 'L'), (0x4D, 'M'), (0x4E, 'N'), (0x4F, 'O'),
    (0x50, 'P'), (0x51, 'Q'), (0x52, 'R'), (0x53, 'S'), (0x54, 'T'), (0x55, 'U'),
    (0x56, 'V'), (0x57, 'W'), (0x58, 'X'), (0x59, 'Y'), (0x5A, 'Z'),
    (0x65, '€'),
]);

/// A.2.8 Malayalam national language single shift table (identifier 8).
#[rustfmt::skip]
static MALAYALAM_SINGLE: [Option<char>; 128] = single_shift_table(&[
    (0x00, '@'), (0x01, '£'), (0x02, '$'), (0x03, '¥'), (0x04, '¿'), (0x05, '"'),
    (0x06, '¤'), (0x07, '%'), (0x08, '&'), (0x09, '\''), (0x0A, '\u{c}'), (0x0B, '*'),
    (0x0C, '+'), (0x0E, '-'), (0x0F, '/'),
    (0x10, '<'), (0x11, '='), (0x12, '>'), (0x13, '¡'), (0x14, '^'), (0x15, '¡'),
    (0x16, '_'), (0x17, '#'), (0x18, '*'), (0x19, '\u{0964}'), (0x1A, '\u{0965}'), (0x1C, '\u{0D66}'),
    (0x1D, '\u{0D67}'), (0x1E, '\u{0D68}'), (0x1F, '\u{0D69}'),
    (0x20, '\u{0D6A}'), (0x21, '\u{0D6B}'), (0x22, '\u{0D6C}'), (0x23, '\u{0D6D}'), (0x24, '\u{0D6E}'), (0x25, '\u{0D6F}'),
    (0x26, '\u{0D70}'), (0x27, '\u{0D71}'), (0x28, '{'), (0x29, '}'), (0x2A, '\u{0D72}'), (0x2B, '\u{0D73}'),
    (0x2C, '\u{0D74}'), (0x2D, '\u{0D75}'), (0x2E, '\u{0D7A}'), (0x2F, '\\'),
    (0x30, '\u{0D7B}'), (0x31, '\u{0D7C}'), (0x32, '\u{0D7D}'), (0x33, '\u{0D7E}'), (0x34, '\u{0D7F}'), (0x3C, '['),
    (0x3D, '~'), (0x3E, ']'),
    (0x40, '|'), (0x41, 'A'), (0x42, 'B'), (0x43, 'C'), (0x44, 'D'), (0x45, 'E'),
    (0x46, 'F'), (0x47, 'G'), (0x48, 'H'), (0x49, 'I'), (0x4A, 'J'), (0x4B, 'K'),
    (0x4C, 'L'), (0x4D, 'M'), (0x4E, 'N'), (0x4F, 'O'),
    (0x50, 'P'), (0x51, 'Q'), (0x52, 'R'), (0x53, 'S'), (0x54, 'T'), (0x55, 'U'),
    (0x56, 'V'), (0x57, 'W'), (0x58, 'X'), (0x59, 'Y'), (0x5A, 'Z'),
    (0x65, '€'),
]);

/// A.2.9 Oriya national language single shift table (identifier 9).
#[rustfmt::skip]
static ORIYA_SINGLE: [Option<char>; 128] = single_shift_table(&[
    (0x00, '@'), (0x01, '£'), (0x02, '$'), (0x03, '¥'), (0x04, '¿'), (0x05, '"'),
    (0x06, '¤'), (0x07, '%'), (0x08, '&'), (0x09, '\''), (0x0A, '\u{c}'), (0x0B, '*'),
    (0x0C, '+'), (0x0E, '-'), (0x0F, '/'),
    (0x10, '<'), (0x11, '='), (0x12, '>'), (0x13, '¡'), (0x14, '^'), (0x15, '¡'),
    (0x16, '_'), (0x17, '#'), (0x18, '*'), (0x19, '\u{0964}'), (0x1A, '\u{0965}'), (0x1C, '\u{0B66}'),
    (0x1D, '\u{0B67}'), (0x1E, '\u{0B68}'), (0x1F, '\u{0B69}'),
    (0x20, '\u{0B6A}'), (0x21, '\u{0B6B}'), (0x22, '\u{0B6C}'), (0x23, '\u{0B6D}'), (0x24, '\u{0B6E}'), (0x25, '\u{0B6F}'),
    (0x26, '\u{0B5C}'), (0x27, '\u{0B5D}'), (0x28, '{'), (0x29, '}'), (0x2A, '\u{0B5F}'), (0x2B, '\u{0B70}'),
    (0x2C, '\u{0B71}'), (0x2F, '\\'),
    (0x3C, '['), (0x3D, '~'), (0x3E, ']'),
    (0x40, '|'), (0x41, 'A'), (0x42, 'B'), (0x43, 'C'), (0x44, 'D'), (0x45, 'E'),
    (0x46, 'F'), (0x47, 'G'), (0x48, 'H'), (0x49, 'I'), (0x4A, 'J'), (0x4B, 'K'),
    (0x4C, 'L'), (0x4D, 'M'), (0x4E, 'N'), (0x4F, 'O'),
    (0x50, 'P'), (0x51, 'Q'), (0x52, 'R'), (0x53, 'S'), (0x54, 'T'), (0x55, 'U'),
    (0x56, 'V'), (0x57, 'W'), (0x58, 'X'), (0x59, 'Y'), (0x5A, 'Z'),
    (0x65, '€'),
]);

/// A.2.10 Punjabi national language single shift table (identifier 10).
#[rustfmt::skip]
static PUNJABI_SINGLE: [Option<char>; 128] = single_shift_table(&[
    (0x00, '@'), (0x01, '£'), (0x02, '$'), (0x03, '¥'), (0x04, '¿'), (0x05, '"'),
    (0x06, '¤'), (0x07, '%'), (0x08, '&'), (0x09, '\''), (0x0A, '\u{c}'), (0x0B, '*'),
    (0x0C, '+'), (0x0E, '-'), (0x0F, '/'),
    (0x10, '<'), (0x11, '='), (0x12, '>'), (0x13, '¡'), (0x14, '^'), (0x15, '¡'),
    (0x16, '_'), (0x17, '#'), (0x18, '*'), (0x19, '\u{0964}'), (0x1A, '\u{0965}'), (0x1C, '\u{0A66}'),
    (0x1D, '\u{0A67}'), (0x1E, '\u{0A68}'), (0x1F, '\u{0A69}'),
    (0x20, '\u{0A6A}'), (0x21, '\u{0A6B}'), (0x22, '\u{0A6C}'), (0x23, '\u{0A6D}'), (0x24, '\u{0A6E}'), (0x25, '\u{0A6F}'),
    (0x26, '\u{0A59}'), (0x27, '\u{0A5A}'), (0x28, '{'), (0x29, '}'), (0x2A, '\u{0A5B}'), (0x2B, '\u{0A5C}'),
    (0x2C, '\u{0A5E}'), (0x2D, '\u{0A75}'), (0x2F, '\\'),
    (0x3C, '['), (0x3D, '~'), (0x3E, ']'),
    (0x40, '|'), (0x41, 'A'), (0x42, 'B'), (0x43, 'C'), (0x44, 'D'), (0x45, 'E'),
    (0x46, 'F'), (0x47, 'G'), (0x48, 'H'), (0x49, 'I'), (0x4A, 'J'), (0x4B, 'K'),
    (0x4C, 'L'), (0x4D, 'M'), (0x4E, 'N'), (0x4F, 'O'),
    (0x50, 'P'), (0x51, 'Q'), (0x52, 'R'), (0x53, 'S'), (0x54, 'T'), (0x55, 'U'),
    (0x56, 'V'), (0x57, 'W'), (0x58, 'X'), (0x59, 'Y'), (0x5A, 'Z'),
    (0x65, '€'),
]);

/// A.2.11 Tamil national language single shift table (identifier 11).
#[rustfmt::skip]
static TAMIL_SINGLE: [Option<char>; 128] = single_shift_table(&[
    (0x00, '@'), (0x01, '£'), (0x02, '$'), (0x03, '¥'), (0x04, '¿'), (0x05, '"'),
    (0x06, '¤'), (0x07, '%'), (0x08, '&'), (0x09, '\''), (0x0A, '\u{c}'), (0x0B, '*'),
    (0x0C, '+'), (0x0E, '-'), (0x0F, '/'),
    (0x10, '<'), (0x11, '='), (0x12, '>'), (0x13, '¡'), (0x14, '^'), (0x15, '¡'),
    (0x16, '_'), (0x17, '#'), (0x18, '*'), (0x19, '\u{0964}'), (0x1A, '\u{0965}'), (0x1C, '\u{0BE6}'),
    (0x1D, '\u{0BE7}'), (0x1E, '\u{0BE8}'), (0x1F, '\u{0BE9}'),
    (0x20, '\u{0BEA}'), (0x21, '\u{0BEB}'), (0x22, '\u{0BEC}'), (0x23, '\u{0BED}'), (0x24, '\u{0BEE}'), (0x25, '\u{0BEF}'),
    (0x26, '\u{0BF3}'), (0x27, '\u{0BF4}'), (0x28, '{'), (0x29, '}'), (0x2A, '\u{0BF5}'), (0x2B, '\u{0BF6}'),
    (0x2C, '\u{0BF7}'), (0x2D, '\u{0BF8}'), (0x2E, '\u{0BFA}'), (0x2F, '\\'),
    (0x3C, '['), (0x3D, '~'), (0x3E, ']'),
    (0x40, '|'), (0x41, 'A'), (0x42, 'B'), (0x43, 'C'), (0x44, 'D'), (0x45, 'E'),
    (0x46, 'F'), (0x47, 'G'), (0x48, 'H'), (0x49, 'I'), (0x4A, 'J'), (0x4B, 'K'),
    (0x4C, 'L'), (0x4D, 'M'), (0x4E, 'N'), (0x4F, 'O'),
    (0x50, 'P'), (0x51, 'Q'), (0x52, 'R'), (0x53, 'S'), (0x54, 'T'), (0x55, 'U'),
    (0x56, 'V'), (0x57, 'W'), (0x58, 'X'), (0x59, 'Y'), (0x5A, 'Z'),
    (0x65, '€'),
]);

/// A.2.12 Telugu national language single shift table (identifier 12).
#[rustfmt::skip]
static TELUGU_SINGLE: [Option<char>; 128] = single_shift_table(&[
    (0x00, '@'), (0x01, '£'), (0x02, '$'), (0x03, '¥'), (0x04, '¿'), (0x05, '"'),
    (0x06, '¤'), (0x07, '%'), (0x08, '&'), (0x09, '\''), (0x0A, '\u{c}'), (0x0B, '*'),
    (0x0C, '+'), (0x0E, '-'), (0x0F, '/'),
    (0x10, '<'), (0x11, '='), (0x12, '>'), (0x13, '¡'), (0x14, '^'), (0x15, '¡'),
    (0x16, '_'), (0x17, '#'), (0x18, '*'), (0x1C, '\u{0C66}'), (0x1D, '\u{0C67}'), (0x1E, '\u{0C68}'),
    (0x1F, '\u{0C69}'),
    (0x20, '\u{0C6A}'), (0x21, '\u{0C6B}'), (0x22, '\u{0C6C}'), (0x23, '\u{0C6D}'), (0x24, '\u{0C6E}'), (0x25, '\u{0C6F}'),
    (0x26, '\u{0C58}'), (0x27, '\u{0C59}'), (0x28, '{'), (0x29, '}'), (0x2A, '\u{0C78}'), (0x2B, '\u{0C79}'),
    (0x2C, '\u{0C7A}'), (0x2D, '\u{0C7B}'), (0x2E, '\u{0C7C}'), (0x2F, '\\'),
    (0x30, '\u{0C7D}'), (0x31, '\u{0C7E}'), (0x32, '\u{0C7F}'), (0x3C, '['), (0x3D, '~'), (0x3E, ']'),
    (0x40, '|'), (0x41, 'A'), (0x42, 'B'), (0x43, 'C'), (0x44, 'D'), (0x45, 'E'),
    (0x46, 'F'), (0x47, 'G'), (0x48, 'H'), (0x49, 'I'), (0x4A, 'J'), (0x4B, 'K'),
    (0x4C, 'L'), (0x4D, 'M'), (0x4E, 'N'), (0x4F, 'O'),
    (0x50, 'P'), (0x51, 'Q'), (0x52, 'R'), (0x53, 'S'), (0x54, 'T'), (0x55, 'U'),
    (0x56, 'V'), (0x57, 'W'), (0x58, 'X'), (0x59, 'Y'), (0x5A, 'Z'),
    (0x65, '€'),
]);

/// A.2.13 Urdu national language single shift table (identifier 13).
#[rustfmt::skip]
static URDU_SINGLE: [Option<char>; 128] = single_shift_table(&[
    (0x00, '@'), (0x01, '£'), (0x02, '$'), (0x03, '¥'), (0x04, '¿'), (0x05, '"'),
    (0x06, '¤'), (0x07, '%'), (0x08, '&'), (0x09, '\''), (0x0A, '\u{c}'), (0x0B, '*'),
    (0x0C, '+'), (0x0E, '-'), (0x0F, '/'),
    (0x10, '<'), (0x11, '='), (0x12, '>'), (0x13, '¡'), (0x14, '^'), (0x15, '¡'),
    (0x16, '_'), (0x17, '#'), (0x18, '*'), (0x19, '\u{0600}'), (0x1A, '\u{0601}'), (0x1C, '\u{06F0}'),
    (0x1D, '\u{06F1}'), (0x1E, '\u{06F2}'), (0x1F, '\u{06F3}'),
    (0x20, '\u{06F4}'), (0x21, '\u{06F5}'), (0x22, '\u{06F6}'), (0x23, '\u{06F7}'), (0x24, '\u{06F8}'), (0x25, '\u{06F9}'),
    (0x26, '\u{060C}'), (0x27, '\u{060D}'), (0x28, '{'), (0x29, '}'), (0x2A, '\u{060E}'), (0x2B, '\u{060F}'),
    (0x2C, '\u{0610}'), (0x2D, '\u{0611}'), (0x2E, '\u{0612}'), (0x2F, '\\'),
    (0x30, '\u{0613}'), (0x31, '\u{0614}'), (0x32, '\u{061B}'), (0x33, '\u{061F}'), (0x34, '\u{0640}'), (0x35, '\u{0652}'),
    (0x36, '\u{0658}'), (0x37, '\u{066B}'), (0x38, '\u{066C}'), (0x39, '\u{0672}'), (0x3A, '\u{0673}'), (0x3B, '\u{06CD}'),
    (0x3C, '['), (0x3D, '~'), (0x3E, ']'), (0x3F, '\u{06D4}'),
    (0x40, '|'), (0x41, 'A'), (0x42, 'B'), (0x43, 'C'), (0x44, 'D'), (0x45, 'E'),
    (0x46, 'F'), (0x47, 'G'), (0x48, 'H'), (0x49, 'I'), (0x4A, 'J'), (0x4B, 'K'),
    (0x4C, 'L'), (0x4D, 'M'), (0x4E, 'N'), (0x4F, 'O'),
    (0x50, 'P'), (0x51, 'Q'), (0x52, 'R'), (0x53, 'S'), (0x54, 'T'), (0x55, 'U'),
    (0x56, 'V'), (0x57, 'W'), (0x58, 'X'), (0x59, 'Y'), (0x5A, 'Z'),
    (0x65, '€'),
]);

#[cfg(test)]
mod tests {
    use super::*;

    /// Identifiers held, per 23.038 §6.2.1.2.4.
    const LOCKING_IDS: [u8; 4] = [1, 3, 6, 13];
    const SINGLE_IDS: [u8; 13] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];

    fn locking(id: u8) -> &'static [char; 128] {
        locking_shift(id).expect("locking table held")
    }

    fn single(id: u8) -> &'static [Option<char>; 128] {
        single_shift(id).expect("single shift table held")
    }

    fn check_locking(id: u8, cells: &[(u8, char)]) {
        let table = locking(id);
        for &(septet, want) in cells {
            assert_eq!(
                table[usize::from(septet)],
                want,
                "id {id} septet {septet:#04x}"
            );
        }
    }

    fn check_single(id: u8, cells: &[(u8, Option<char>)]) {
        let table = single(id);
        for &(septet, want) in cells {
            assert_eq!(
                table[usize::from(septet)],
                want,
                "id {id} septet {septet:#04x}"
            );
        }
    }

    /// Septets that hold the same character in every locking table held here.
    fn common_locking_cells() -> Vec<(u8, char)> {
        let mut cells = vec![(0x0A, '\n'), (0x0D, '\r'), (0x1B, '\u{1B}'), (0x20, ' ')];
        cells.extend((b'0'..=b'9').map(|b| (b - b'0' + 0x30, char::from(b))));
        cells.extend((b'a'..=b'z').map(|b| (b - b'a' + 0x61, char::from(b))));
        cells
    }

    #[test]
    fn locking_tables_have_128_cells_escape_at_1b_and_no_duplicates() {
        for id in LOCKING_IDS {
            let table = locking(id);
            assert_eq!(table.len(), 128, "id {id}");
            assert_eq!(table[0x1B], '\u{1B}', "id {id}");
            // No locking table in Annex A repeats a character, so a decoded
            // character maps back to exactly one septet.
            for (i, a) in table.iter().enumerate() {
                for (j, b) in table.iter().enumerate().skip(i + 1) {
                    assert_ne!(a, b, "id {id}: {a:?} at {i:#04x} and {j:#04x}");
                }
            }
            check_locking(id, &common_locking_cells());
        }
    }

    #[test]
    fn single_shift_tables_carry_the_default_extension_characters() {
        // Every A.2 table repeats the default extension table (§6.2.1.1), so a
        // message that only needs '{' or '€' decodes the same under any of them.
        let default_extension = [
            (0x0A, Some('\u{C}')),
            (0x14, Some('^')),
            (0x28, Some('{')),
            (0x29, Some('}')),
            (0x2F, Some('\\')),
            (0x3C, Some('[')),
            (0x3D, Some('~')),
            (0x3E, Some(']')),
            (0x40, Some('|')),
            (0x65, Some('€')),
            // ESC ESC is reserved (§6.2.1.1) and 0x0D is CR2: neither is a character.
            (0x1B, None),
            (0x0D, None),
        ];
        for id in SINGLE_IDS {
            check_single(id, &default_extension);
        }
    }

    #[test]
    fn single_shift_duplicates_are_only_those_the_spec_prints() {
        for id in SINGLE_IDS {
            let table = single(id);
            let mut dups = Vec::new();
            for (i, a) in table.iter().enumerate() {
                let Some(a) = a else { continue };
                for (j, b) in table.iter().enumerate().skip(i + 1) {
                    if Some(*a) == *b {
                        dups.push((*a, i, j));
                    }
                }
            }
            // A.2.4 to A.2.13 print '*' at 0x0B and 0x18 and '¡' at 0x13 and 0x15.
            let expected: &[(char, usize, usize)] = if id >= 4 {
                &[('*', 0x0B, 0x18), ('¡', 0x13, 0x15)]
            } else {
                &[]
            };
            assert_eq!(dups, expected, "id {id}");
        }
    }

    #[test]
    fn unknown_identifiers_and_spanish_locking_are_none() {
        // 0 is the caller's default alphabet; 14..=255 are reserved (§6.2.1.2.4).
        for id in [0, 14, 15, 127, 200, 255] {
            assert!(locking_shift(id).is_none(), "locking {id}");
            assert!(single_shift(id).is_none(), "single {id}");
        }
        // A.3.2 is void: Spanish has a single shift table only.
        assert!(locking_shift(2).is_none());
        assert!(single_shift(2).is_some());
        // Indic locking tables with unassigned codes are not held (module docs).
        for id in [4, 5, 7, 8, 9, 10, 11, 12] {
            assert!(locking_shift(id).is_none(), "locking {id}");
        }
    }

    // Spot checks. Sources, each read for every cell below:
    // [AOSP] AOSP GsmAlphabet.java, 23.038 V9.1.1;
    // [GC] gsmcodecs lut/*.csv, 23.038 V18.0.0;
    // [CC] CyberChef GSM-7 tables, 23.038 V16.0.0.

    #[test]
    fn turkish_locking_a_3_1() {
        // [AOSP] [GC turkish_lock.csv] [CC]
        check_locking(
            1,
            &[
                (0x04, '€'),
                (0x07, 'ı'), // replaces the default alphabet's 'ì'
                (0x09, 'Ç'),
                (0x0B, 'Ğ'),
                (0x0C, 'ğ'),
                (0x1C, 'Ş'),
                (0x1D, 'ş'),
                (0x24, '¤'),
                (0x40, 'İ'),
                (0x5F, '§'),
                (0x60, 'ç'),
                (0x7F, 'à'),
            ],
        );
    }

    #[test]
    fn portuguese_locking_a_3_3() {
        // [AOSP] [GC portugese_lock.csv] [CC]
        check_locking(
            3,
            &[
                (0x04, 'ê'),
                (0x06, 'ú'),
                (0x09, 'ç'),
                (0x0B, 'Ô'),
                (0x0E, 'Á'),
                (0x12, 'ª'),
                (0x15, '∞'),
                (0x17, '\\'),
                (0x18, '€'),
                (0x1A, '|'),
                (0x24, 'º'),
                (0x40, 'Í'),
                (0x5D, 'Ú'),
                (0x60, '~'),
                (0x7D, '`'),
            ],
        );
    }

    #[test]
    fn hindi_locking_a_3_6() {
        // [AOSP] [GC hindi_lock.csv] [CC]; 0x2C from [AOSP] [CC], see module docs.
        check_locking(
            6,
            &[
                (0x00, '\u{0901}'),
                (0x03, '\u{0905}'),
                (0x10, '\u{0910}'),
                (0x1C, '\u{091B}'),
                (0x22, '\u{091F}'),
                (0x28, ')'),
                (0x29, '('),
                (0x2C, ','),
                (0x3C, '\u{0929}'),
                (0x40, '\u{092C}'),
                (0x4E, '\u{093C}'),
                (0x60, '\u{0950}'),
                (0x7F, '\u{097F}'),
            ],
        );
    }

    #[test]
    fn urdu_locking_a_3_13() {
        // [AOSP] [GC urdu_lock.csv] [CC]; 0x2C from [AOSP] [CC], see module docs.
        check_locking(
            13,
            &[
                (0x00, '\u{0627}'),
                (0x01, '\u{0622}'),
                (0x0B, '\u{0679}'),
                (0x10, '\u{062B}'),
                (0x22, '\u{068F}'),
                (0x2C, ','),
                (0x3C, '\u{069A}'),
                (0x40, '\u{0635}'),
                (0x58, '\u{0621}'),
                (0x60, '\u{0654}'),
                (0x7B, '\u{0655}'),
                (0x7F, '\u{0670}'),
            ],
        );
    }

    #[test]
    fn turkish_single_a_2_1() {
        // [AOSP] [GC turkish_shift.csv] [CC]
        check_single(
            1,
            &[
                (0x47, Some('Ğ')),
                (0x49, Some('İ')),
                (0x53, Some('Ş')),
                (0x63, Some('ç')),
                (0x65, Some('€')),
                (0x67, Some('ğ')),
                (0x69, Some('ı')),
                (0x73, Some('ş')),
                (0x0A, Some('\u{C}')),
                (0x40, Some('|')),
                (0x00, None),
                (0x41, None),
                (0x7F, None),
            ],
        );
    }

    #[test]
    fn spanish_single_a_2_2() {
        // [AOSP] [GC spanish_shift.csv] [CC]; 0x09 is small 'ç' in all three.
        check_single(
            2,
            &[
                (0x09, Some('ç')),
                (0x41, Some('Á')),
                (0x49, Some('Í')),
                (0x4F, Some('Ó')),
                (0x55, Some('Ú')),
                (0x61, Some('á')),
                (0x65, Some('€')),
                (0x69, Some('í')),
                (0x6F, Some('ó')),
                (0x75, Some('ú')),
                (0x47, None),
                (0x08, None),
            ],
        );
    }

    #[test]
    fn portuguese_single_a_2_3() {
        // [AOSP] [GC portugese_shift.csv] [CC]
        check_single(
            3,
            &[
                (0x05, Some('ê')),
                (0x09, Some('ç')),
                (0x0B, Some('Ô')),
                (0x0C, Some('ô')),
                (0x0E, Some('Á')),
                (0x0F, Some('á')),
                (0x12, Some('Φ')),
                (0x13, Some('Γ')),
                (0x15, Some('Ω')),
                (0x16, Some('Π')),
                (0x17, Some('Ψ')),
                (0x18, Some('Σ')),
                (0x19, Some('Θ')),
                (0x1F, Some('Ê')),
                (0x41, Some('À')),
                (0x5B, Some('Ã')),
                (0x5C, Some('Õ')),
                (0x61, Some('Â')),
                (0x7B, Some('ã')),
                (0x7C, Some('õ')),
                (0x7F, Some('â')),
                (0x1A, None),
            ],
        );
    }

    /// Cells shared by A.2.4 to A.2.13 ([AOSP] [GC] [CC] all agree).
    const INDIC_COMMON: [(u8, Option<char>); 10] = [
        (0x00, Some('@')),
        (0x04, Some('¿')),
        (0x05, Some('"')),
        (0x09, Some('\'')),
        (0x0B, Some('*')),
        (0x13, Some('¡')),
        (0x17, Some('#')),
        (0x41, Some('A')),
        (0x5A, Some('Z')),
        (0x61, None),
    ];

    #[test]
    fn indic_and_urdu_single_common_cells() {
        for id in 4..=13 {
            check_single(id, &INDIC_COMMON);
        }
    }

    #[test]
    fn bengali_single_a_2_4() {
        // [AOSP] [GC bengali_shift.csv] [CC]
        check_single(
            4,
            &[
                (0x19, Some('\u{09E6}')),
                (0x1A, Some('\u{09E7}')),
                (0x1C, Some('\u{09E8}')),
                (0x24, Some('\u{09DF}')),
                (0x2A, Some('\u{09E3}')),
                (0x2E, Some('\u{09F5}')),
                (0x34, Some('\u{09FA}')),
                (0x35, None),
                (0x0E, Some('-')),
                (0x0F, Some('/')),
            ],
        );
    }

    #[test]
    fn gujarati_single_a_2_5() {
        // [AOSP] [GC gujarati_shift.csv] [CC]
        check_single(
            5,
            &[
                (0x19, Some('\u{0964}')),
                (0x1A, Some('\u{0965}')),
                (0x1C, Some('\u{0AE6}')),
                (0x1F, Some('\u{0AE9}')),
                (0x20, Some('\u{0AEA}')),
                (0x25, Some('\u{0AEF}')),
                (0x26, None),
                (0x2A, None),
                (0x30, None),
                (0x10, Some('<')),
            ],
        );
    }

    #[test]
    fn hindi_single_a_2_6() {
        // [AOSP] [GC hindi_shift.csv] [CC]
        check_single(
            6,
            &[
                (0x1C, Some('\u{0966}')),
                (0x25, Some('\u{096F}')),
                (0x26, Some('\u{0951}')),
                (0x2A, Some('\u{0953}')),
                (0x2C, Some('\u{0958}')),
                (0x30, Some('\u{095B}')),
                (0x38, Some('\u{0963}')),
                (0x3A, Some('\u{0971}')),
                (0x3B, None),
                (0x3F, None),
            ],
        );
    }

    #[test]
    fn kannada_single_a_2_7() {
        // [AOSP] [GC kannada_shift.csv] [CC]
        check_single(
            7,
            &[
                (0x1C, Some('\u{0CE6}')),
                (0x20, Some('\u{0CEA}')),
                (0x25, Some('\u{0CEF}')),
                (0x26, Some('\u{0CDE}')),
                (0x27, Some('\u{0CF1}')),
                (0x2A, Some('\u{0CF2}')),
                (0x2B, None),
                (0x30, None),
                (0x19, Some('\u{0964}')),
                (0x1A, Some('\u{0965}')),
            ],
        );
    }

    #[test]
    fn malayalam_single_a_2_8() {
        // [AOSP] [GC malayalam_shift.csv] [CC]
        check_single(
            8,
            &[
                (0x1C, Some('\u{0D66}')),
                (0x26, Some('\u{0D70}')),
                (0x27, Some('\u{0D71}')),
                (0x2A, Some('\u{0D72}')),
                (0x2D, Some('\u{0D75}')),
                (0x2E, Some('\u{0D7A}')),
                (0x30, Some('\u{0D7B}')),
                (0x34, Some('\u{0D7F}')),
                (0x35, None),
                (0x19, Some('\u{0964}')),
            ],
        );
    }

    #[test]
    fn oriya_single_a_2_9() {
        // [AOSP] [GC oriya_shift.csv]; [CC] agrees except a typo at 0x20 (0BEA for 0B6A).
        check_single(
            9,
            &[
                (0x1C, Some('\u{0B66}')),
                (0x20, Some('\u{0B6A}')),
                (0x25, Some('\u{0B6F}')),
                (0x26, Some('\u{0B5C}')),
                (0x27, Some('\u{0B5D}')),
                (0x2A, Some('\u{0B5F}')),
                (0x2B, Some('\u{0B70}')),
                (0x2C, Some('\u{0B71}')),
                (0x2D, None),
                (0x30, None),
            ],
        );
    }

    #[test]
    fn punjabi_single_a_2_10() {
        // [AOSP] [GC punjabi_shift.csv] [CC]
        check_single(
            10,
            &[
                (0x1C, Some('\u{0A66}')),
                (0x25, Some('\u{0A6F}')),
                (0x26, Some('\u{0A59}')),
                (0x27, Some('\u{0A5A}')),
                (0x2A, Some('\u{0A5B}')),
                (0x2B, Some('\u{0A5C}')),
                (0x2C, Some('\u{0A5E}')),
                (0x2D, Some('\u{0A75}')),
                (0x2E, None),
                (0x30, None),
            ],
        );
    }

    #[test]
    fn tamil_single_a_2_11() {
        // [AOSP] [GC tamil_shift.csv] [CC]
        check_single(
            11,
            &[
                (0x1C, Some('\u{0BE6}')),
                (0x24, Some('\u{0BEE}')),
                (0x25, Some('\u{0BEF}')),
                (0x26, Some('\u{0BF3}')),
                (0x27, Some('\u{0BF4}')),
                (0x2A, Some('\u{0BF5}')),
                (0x2D, Some('\u{0BF8}')),
                (0x2E, Some('\u{0BFA}')),
                (0x30, None),
                (0x19, Some('\u{0964}')),
            ],
        );
    }

    #[test]
    fn telugu_single_a_2_12() {
        // [AOSP] [GC telugu_shift.csv] [CC]; 0x65 '€' from [AOSP] [CC], see module docs.
        check_single(
            12,
            &[
                (0x19, None), // Telugu has no danda cells, unlike the other Indic tables
                (0x1A, None),
                (0x1C, Some('\u{0C66}')),
                (0x26, Some('\u{0C58}')),
                (0x27, Some('\u{0C59}')),
                (0x2A, Some('\u{0C78}')),
                (0x2E, Some('\u{0C7C}')),
                (0x30, Some('\u{0C7D}')),
                (0x32, Some('\u{0C7F}')),
                (0x33, None),
                (0x65, Some('€')),
            ],
        );
    }

    #[test]
    fn urdu_single_a_2_13() {
        // [AOSP] [GC urdu_shift.csv] [CC]
        check_single(
            13,
            &[
                (0x19, Some('\u{0600}')),
                (0x1A, Some('\u{0601}')),
                (0x1C, Some('\u{06F0}')),
                (0x26, Some('\u{060C}')),
                (0x2A, Some('\u{060E}')),
                (0x30, Some('\u{0613}')),
                (0x39, Some('\u{0672}')),
                (0x3B, Some('\u{06CD}')),
                (0x3F, Some('\u{06D4}')),
                (0x36, Some('\u{0658}')),
            ],
        );
    }
}
