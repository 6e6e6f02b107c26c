//! Byte-exact replies of the firmware, per personality.
use super::*;
