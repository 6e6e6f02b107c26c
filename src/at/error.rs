//! Errors of the AT layer: the one [`AtError`] enum, and the `+CME ERROR` /
//! `+CMS ERROR` result codes as enums ([`CmeError`], [`CmsError`]).
//!
//! The numeric values and their meanings come from 3GPP TS 27.007 §9.2 (mobile
//! termination errors) and TS 27.005 §3.2.5 (message service failure result
//! codes), which in turn imports the RP-cause values 0..127 of TS 24.011 Annex E-2
//! and the TP-Failure-Cause values 128..255 of TS 23.040 §9.2.3.22. Each code
//! carries a human meaning and an [`is_transient`](CmsError::is_transient)
//! classification that the modem engine uses to decide whether a retry can help.

use std::time::Duration;

/// Generates an error-code enum from one table, so the code, the text a modem
/// prints in verbose mode (`AT+CMEE=2`) and the retry class never drift apart.
macro_rules! result_codes {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $variant:ident = $code:literal, $text:literal, $transient:literal; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $(
                #[doc = $text]
                $variant,
            )*
            /// A numeric code this table does not name (vendor-specific values,
            /// 27.005 §3.2.5 reserves 512.. for manufacturers).
            Other(u16),
            /// A verbose text this table does not name, kept as the modem printed it.
            Text(String),
        }

        impl $name {
            /// The error for a numeric code; unknown numbers are kept as `Other(n)`.
            pub fn from_code(code: u16) -> Self {
                match code {
                    $( $code => Self::$variant, )*
                    n => Self::Other(n),
                }
            }

            /// The numeric code, if known (a verbose text we could not map has none).
            pub fn code(&self) -> Option<u16> {
                match self {
                    $( Self::$variant => Some($code), )*
                    Self::Other(n) => Some(*n),
                    Self::Text(_) => None,
                }
            }

            /// The meaning in words, as the specification states it.
            pub fn meaning(&self) -> &str {
                match self {
                    $( Self::$variant => $text, )*
                    Self::Other(_) => "unrecognised error code",
                    Self::Text(t) => t.as_str(),
                }
            }

            /// Whether retrying the same operation later can succeed (network or
            /// SIM busy, congestion...) as opposed to a permanent refusal (wrong
            /// number, barred, invalid PDU...). Unknown codes count as permanent.
            pub fn is_transient(&self) -> bool {
                match self {
                    $( Self::$variant => $transient, )*
                    Self::Other(_) | Self::Text(_) => false,
                }
            }

            /// Parses the argument of the result code: a number (`AT+CMEE=1`) or a
            /// verbose text (`AT+CMEE=2`). Never fails: unknown values are kept.
            pub fn parse(arg: &str) -> Self {
                let arg = arg.trim().trim_matches('"').trim();
                if let Ok(n) = arg.parse::<u16>() {
                    return Self::from_code(n);
                }
                let wanted = normalise(arg);
                $(
                    if normalise($text) == wanted {
                        return Self::$variant;
                    }
                )*
                Self::Text(arg.to_string())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self.code() {
                    Some(n) => write!(f, "{} ({})", self.meaning(), n),
                    None => f.write_str(self.meaning()),
                }
            }
        }
    };
}

/// Compares verbose texts loosely: modems differ in case, punctuation and the
/// "(U)SIM" spelling.
fn normalise(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect::<String>()
        .replace("usim", "sim")
}

result_codes! {
    /// `+CME ERROR: <err>`: mobile termination errors, 3GPP TS 27.007 §9.2.1
    /// (general) and §9.2.2 (GPRS/packet domain).
    CmeError {
        PhoneFailure = 0, "phone failure", true;
        NoConnectionToPhone = 1, "no connection to phone", false;
        PhoneAdaptorLinkReserved = 2, "phone-adaptor link reserved", true;
        OperationNotAllowed = 3, "operation not allowed", false;
        OperationNotSupported = 4, "operation not supported", false;
        PhSimPinRequired = 5, "PH-SIM PIN required", false;
        PhFsimPinRequired = 6, "PH-FSIM PIN required", false;
        PhFsimPukRequired = 7, "PH-FSIM PUK required", false;
        SimNotInserted = 10, "SIM not inserted", false;
        SimPinRequired = 11, "SIM PIN required", false;
        SimPukRequired = 12, "SIM PUK required", false;
        SimFailure = 13, "SIM failure", false;
        SimBusy = 14, "SIM busy", true;
        SimWrong = 15, "SIM wrong", false;
        IncorrectPassword = 16, "incorrect password", false;
        SimPin2Required = 17, "SIM PIN2 required", false;
        SimPuk2Required = 18, "SIM PUK2 required", false;
        MemoryFull = 20, "memory full", true;
        InvalidIndex = 21, "invalid index", false;
        NotFound = 22, "not found", false;
        MemoryFailure = 23, "memory failure", false;
        TextStringTooLong = 24, "text string too long", false;
        InvalidCharactersInTextString = 25, "invalid characters in text string", false;
        DialStringTooLong = 26, "dial string too long", false;
        InvalidCharactersInDialString = 27, "invalid characters in dial string", false;
        NoNetworkService = 30, "no network service", true;
        NetworkTimeout = 31, "network timeout", true;
        EmergencyCallsOnly = 32, "network not allowed - emergency calls only", true;
        NetworkPersonalisationPinRequired = 40, "network personalization PIN required", false;
        NetworkPersonalisationPukRequired = 41, "network personalization PUK required", false;
        Unknown = 100, "unknown", false;
        IllegalMs = 103, "Illegal MS", false;
        IllegalMe = 106, "Illegal ME", false;
        GprsServicesNotAllowed = 107, "GPRS services not allowed", false;
        PlmnNotAllowed = 111, "PLMN not allowed", false;
        LocationAreaNotAllowed = 112, "Location area not allowed", false;
        RoamingNotAllowed = 113, "Roaming not allowed in this location area", false;
        UnspecifiedGprsError = 148, "unspecified GPRS error", true;
        PdpAuthenticationFailure = 149, "PDP authentication failure", false;
        InvalidMobileClass = 150, "invalid mobile class", false;
    }
}

result_codes! {
    /// `+CMS ERROR: <err>`: message service failures, 3GPP TS 27.005 §3.2.5.
    /// 0..127 are RP-cause values (TS 24.011 Annex E-2) relayed from the network,
    /// 128..255 TP-Failure-Cause values (TS 23.040 §9.2.3.22), 300.. are raised
    /// by the modem itself.
    CmsError {
        // TS 24.011 Annex E-2 (RP-ERROR causes from the network).
        UnassignedNumber = 1, "unassigned (unallocated) number", false;
        OperatorDeterminedBarring = 8, "operator determined barring", false;
        CallBarred = 10, "call barred", false;
        ShortMessageTransferRejected = 21, "short message transfer rejected", false;
        MemoryCapacityExceededMt = 22, "memory capacity exceeded", true;
        // The handset is switched off or unreachable: may succeed later.
        DestinationOutOfService = 27, "destination out of service", true;
        UnidentifiedSubscriber = 28, "unidentified subscriber", false;
        FacilityRejected = 29, "facility rejected", false;
        UnknownSubscriber = 30, "unknown subscriber", false;
        NetworkOutOfOrder = 38, "network out of order", true;
        TemporaryFailure = 41, "temporary failure", true;
        Congestion = 42, "congestion", true;
        ResourcesUnavailable = 47, "resources unavailable, unspecified", true;
        FacilityNotSubscribed = 50, "requested facility not subscribed", false;
        FacilityNotImplemented = 69, "requested facility not implemented", false;
        // A lower-layer mix-up on one attempt, not a property of the message.
        InvalidTransferReference = 81, "invalid short message transfer reference value", true;
        InvalidMessage = 95, "invalid message, unspecified", false;
        InvalidMandatoryInformation = 96, "invalid mandatory information", false;
        MessageTypeNonExistent = 97, "message type non-existent or not implemented", false;
        MessageNotCompatible = 98, "message not compatible with short message protocol state", false;
        InformationElementNonExistent = 99, "information element non-existent or not implemented", false;
        ProtocolError = 111, "protocol error, unspecified", false;
        Interworking = 127, "interworking, unspecified", false;
        // TS 23.040 §9.2.3.22 (TP-Failure-Cause).
        TelematicInterworkingNotSupported = 128, "telematic interworking not supported", false;
        ShortMessageType0NotSupported = 129, "short message type 0 not supported", false;
        CannotReplaceShortMessage = 130, "cannot replace short message", false;
        UnspecifiedTpPidError = 143, "unspecified TP-PID error", false;
        DataCodingSchemeNotSupported = 144, "data coding scheme (alphabet) not supported", false;
        MessageClassNotSupported = 145, "message class not supported", false;
        UnspecifiedTpDcsError = 159, "unspecified TP-DCS error", false;
        CommandCannotBeActioned = 160, "command cannot be actioned", false;
        CommandUnsupported = 161, "command unsupported", false;
        UnspecifiedTpCommandError = 175, "unspecified TP-Command error", false;
        TpduNotSupported = 176, "TPDU not supported", false;
        ScBusy = 192, "SC busy", true;
        NoScSubscription = 193, "no SC subscription", false;
        ScSystemFailure = 194, "SC system failure", true;
        InvalidSmeAddress = 195, "invalid SME address", false;
        DestinationSmeBarred = 196, "destination SME barred", false;
        DuplicateRejected = 197, "SM rejected-duplicate SM", false;
        TpVpfNotSupported = 198, "TP-VPF not supported", false;
        TpVpNotSupported = 199, "TP-VP not supported", false;
        SimSmsStorageFull = 208, "(U)SIM SMS storage full", true;
        NoSmsStorageCapabilityInSim = 209, "no SMS storage capability in (U)SIM", false;
        ErrorInMs = 210, "error in MS", false;
        MemoryCapacityExceeded = 211, "memory capacity exceeded in MS", true;
        SimToolkitBusy = 212, "(U)SIM application toolkit busy", true;
        SimDataDownloadError = 213, "(U)SIM data download error", false;
        UnspecifiedErrorCause = 255, "unspecified error cause", false;
        // TS 27.005 §3.2.5 (raised by the ME/TA).
        MeFailure = 300, "ME failure", true;
        SmsServiceReserved = 301, "SMS service of ME reserved", false;
        OperationNotAllowed = 302, "operation not allowed", false;
        OperationNotSupported = 303, "operation not supported", false;
        InvalidPduModeParameter = 304, "invalid PDU mode parameter", false;
        InvalidTextModeParameter = 305, "invalid text mode parameter", false;
        SimNotInserted = 310, "(U)SIM not inserted", false;
        SimPinRequired = 311, "(U)SIM PIN required", false;
        PhSimPinRequired = 312, "PH-(U)SIM PIN required", false;
        SimFailure = 313, "(U)SIM failure", false;
        SimBusy = 314, "(U)SIM busy", true;
        SimWrong = 315, "(U)SIM wrong", false;
        SimPukRequired = 316, "(U)SIM PUK required", false;
        SimPin2Required = 317, "(U)SIM PIN2 required", false;
        SimPuk2Required = 318, "(U)SIM PUK2 required", false;
        MemoryFailure = 320, "memory failure", false;
        InvalidMemoryIndex = 321, "invalid memory index", false;
        // Transient: the engine frees storage by reading and deleting.
        MemoryFull = 322, "memory full", true;
        SmscAddressUnknown = 330, "SMSC address unknown", false;
        NoNetworkService = 331, "no network service", true;
        NetworkTimeout = 332, "network timeout", true;
        NoCnmaAckExpected = 340, "no +CNMA acknowledgement expected", false;
        // SIM800 and Quectel modules report network-side send failures as 500
        // with no detail; a CMS error means the SMSC did not take the message,
        // so a bounded retry cannot duplicate it.
        UnknownError = 500, "unknown error", true;
    }
}

/// The one error type of the AT layer.
#[derive(Debug, thiserror::Error)]
pub enum AtError {
    /// The command got no final result code within its timeout. The modem may
    /// still act on it (an `AT+CMGS` may have been sent): callers must not
    /// assume it failed.
    #[error("{command}: no final result within {timeout:?}")]
    Timeout {
        /// The command line, for logs.
        command: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// The modem never printed the `> ` prompt of a two-phase command
    /// (`AT+CMGS`), so the PDU was not written; ESC was sent to be safe.
    #[error("{command}: no \"> \" prompt")]
    NoPrompt {
        /// The command line, for logs.
        command: String,
    },
    /// A two-phase command given way to an SMS the modem announced before
    /// its prompt (see [`AtClient::send_unless_announced`]): ESC was written
    /// instead of the PDU, so nothing was sent.
    ///
    /// [`AtClient::send_unless_announced`]: super::AtClient::send_unless_announced
    #[error("{command}: gave way to an SMS announced before the prompt; nothing sent")]
    GaveWay {
        /// The command line, for logs.
        command: String,
    },
    /// A two-phase command whose caller withheld its payload at the prompt
    /// (see [`AtClient::send_when`]): ESC was written instead, so nothing
    /// was sent.
    ///
    /// [`AtClient::send_when`]: super::AtClient::send_when
    #[error("{command}: payload withheld at the prompt; nothing sent")]
    Withheld {
        /// The command line, for logs.
        command: String,
    },
    /// The port is gone (USB unplugged, EOF, EIO/ENXIO/ENODEV, broken pipe):
    /// distinct from a timeout because the engine must reopen, not retry.
    #[error("device gone: {reason}")]
    DeviceGone {
        /// What the OS or the transport said.
        reason: String,
    },
    /// Any other I/O error on the port.
    #[error("serial I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Opening the serial port failed.
    #[error("cannot open {path}: {reason}")]
    Open {
        /// The device path.
        path: String,
        /// Why (from the serialport crate).
        reason: String,
    },
    /// `+CME ERROR: <err>` (27.007 §9.2).
    #[error("+CME ERROR: {0}")]
    Cme(CmeError),
    /// `+CMS ERROR: <err>` (27.005 §3.2.5).
    #[error("+CMS ERROR: {0}")]
    Cms(CmsError),
    /// A bare `ERROR` or another final result that is not OK (`NO CARRIER`,
    /// `BUSY`, `COMMAND NOT SUPPORT`, `TOO MANY PARAMETERS`...), as printed.
    #[error("modem answered {0}")]
    Error(String),
    /// The response arrived but did not have the expected shape.
    #[error("cannot parse {what}: {line:?}")]
    Parse {
        /// What we were looking for (`"+CSQ"`).
        what: &'static str,
        /// The offending line (or a note when the line is missing).
        line: String,
    },
    /// The transport task has stopped (its owner dropped it).
    #[error("AT transport stopped")]
    Closed,
}

impl AtError {
    /// Whether a retry of the same operation can help (see the code tables).
    /// Timeouts are *not* transient here: after an `AT+CMGS` timeout the message
    /// may have left, and only the engine knows whether resending is safe.
    pub fn is_transient(&self) -> bool {
        match self {
            AtError::Cme(e) => e.is_transient(),
            AtError::Cms(e) => e.is_transient(),
            AtError::NoPrompt { .. } | AtError::GaveWay { .. } | AtError::Withheld { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn parse(what: &'static str, line: impl Into<String>) -> Self {
        AtError::Parse {
            what,
            line: line.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_and_verbose_forms_agree() {
        assert_eq!(CmsError::parse("322"), CmsError::MemoryFull);
        assert_eq!(CmsError::parse("memory full"), CmsError::MemoryFull);
        assert_eq!(
            CmsError::parse("SIM not inserted"),
            CmsError::SimNotInserted
        );
        assert_eq!(CmsError::parse("\"SIM busy\""), CmsError::SimBusy);
        assert_eq!(CmeError::parse("10"), CmeError::SimNotInserted);
        assert_eq!(
            CmeError::parse("SIM PIN required"),
            CmeError::SimPinRequired
        );
        assert_eq!(
            CmeError::parse("incorrect password"),
            CmeError::IncorrectPassword
        );
    }

    #[test]
    fn unknown_codes_are_kept() {
        assert_eq!(CmsError::parse("517"), CmsError::Other(517));
        assert_eq!(CmsError::Other(517).code(), Some(517));
        assert_eq!(
            CmeError::parse("frobnicated"),
            CmeError::Text("frobnicated".into())
        );
        assert!(!CmsError::Other(600).is_transient());
    }

    #[test]
    fn retry_classes() {
        for transient in [331, 332, 42, 41, 47, 38, 314, 300, 322] {
            assert!(CmsError::from_code(transient).is_transient(), "{transient}");
        }
        for permanent in [1, 8, 10, 304, 21, 28, 30, 96, 330] {
            assert!(
                !CmsError::from_code(permanent).is_transient(),
                "{permanent}"
            );
        }
        assert!(CmeError::SimBusy.is_transient());
        assert!(!CmeError::SimPukRequired.is_transient());
    }

    #[test]
    fn display_names_code_and_meaning() {
        assert_eq!(
            CmsError::NetworkTimeout.to_string(),
            "network timeout (332)"
        );
        assert_eq!(CmeError::from_code(3).meaning(), "operation not allowed");
    }
}
