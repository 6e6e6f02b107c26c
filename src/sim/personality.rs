//! Modem personalities: what differs between the SIMCom, Quectel and Huawei
//! firmwares smsgate meets in the field, gathered in one table so the command
//! set stays the same code for all of them.

use std::fmt;
use std::str::FromStr;

/// A family of real modems the simulator imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Personality {
    /// SIMCom SIM800/SIM900: SMS on the SIM ("SM"), `Call Ready`/`SMS Ready` at boot.
    #[default]
    Sim800,
    /// Quectel EC25/EG25: SMS in the module ("ME"), `+QIND` noise, status reports
    /// stored in "SR" and announced as `+CDSI`.
    Ec25,
    /// Huawei E3372/E1752: `^RSSI`/`^BOOT`/`^HCSQ` noise, `COMMAND NOT SUPPORT`.
    E3372,
}

impl Personality {
    pub const ALL: [Personality; 3] = [Personality::Sim800, Personality::Ec25, Personality::E3372];

    pub fn name(self) -> &'static str {
        match self {
            Personality::Sim800 => "sim800",
            Personality::Ec25 => "ec25",
            Personality::E3372 => "e3372",
        }
    }

    /// `AT+CGMI`.
    pub fn manufacturer(self) -> &'static str {
        match self {
            Personality::Sim800 => "SIMCOM_Ltd",
            Personality::Ec25 => "Quectel",
            Personality::E3372 => "huawei",
        }
    }

    /// `AT+CGMM`.
    pub fn model(self) -> &'static str {
        match self {
            Personality::Sim800 => "SIMCOM_SIM800L",
            Personality::Ec25 => "EC25",
            Personality::E3372 => "E3372",
        }
    }

    /// `AT+CGMR`.
    pub fn revision(self) -> &'static str {
        match self {
            Personality::Sim800 => "Revision:1418B04SIM800L24",
            Personality::Ec25 => "EC25EFAR06A06M4G",
            Personality::E3372 => "22.323.62.00.143",
        }
    }

    /// The memory inbound SMS go to after boot (27.005 §3.2.2 `<mem3>`).
    pub fn storage(self) -> &'static str {
        match self {
            Personality::Sim800 | Personality::E3372 => "SM",
            Personality::Ec25 => "ME",
        }
    }

    /// Messages the storage holds.
    pub fn capacity(self) -> usize {
        match self {
            Personality::Sim800 => 30,
            Personality::Ec25 => 255,
            Personality::E3372 => 100,
        }
    }

    /// Index of the first slot: SIMCom counts from 1, Quectel and Huawei from 0.
    pub fn first_index(self) -> u16 {
        match self {
            Personality::Sim800 => 1,
            Personality::Ec25 | Personality::E3372 => 0,
        }
    }

    /// Where status reports are stored when they are stored (`+CDSI`), and whether
    /// they always are (Quectel announces reports as `+CDSI: "SR",<index>` even
    /// when asked for `+CDS`).
    pub fn status_report_storage(self) -> Option<&'static str> {
        match self {
            Personality::Ec25 => Some("SR"),
            _ => None,
        }
    }

    /// The final result for a command the firmware does not know.
    pub fn unknown_command(self) -> &'static str {
        match self {
            Personality::E3372 => "COMMAND NOT SUPPORT",
            _ => "ERROR",
        }
    }

    /// The ICCID query this firmware documents, and the line prefix of its answer.
    pub fn iccid_prefix(self) -> &'static str {
        match self {
            Personality::Sim800 => "",
            Personality::Ec25 => "+QCCID: ",
            Personality::E3372 => "^ICCID: ",
        }
    }

    /// Unsolicited lines printed at boot, in order.
    pub fn boot_urcs(self) -> &'static [&'static str] {
        match self {
            Personality::Sim800 => &["RDY", "+CFUN: 1", "+CPIN: READY", "Call Ready", "SMS Ready"],
            Personality::Ec25 => &[
                "RDY",
                "+CFUN: 1",
                "+CPIN: READY",
                "+QUSIM: 1",
                "+QIND: SMS DONE",
                "+QIND: PB DONE",
            ],
            Personality::E3372 => &["^BOOT:20211254,0,0,0,72", "^SIMST: 1", "^SRVST: 2"],
        }
    }

    /// Unsolicited lines the firmware prints now and then on its own.
    pub fn noise(self) -> &'static [&'static str] {
        match self {
            Personality::Sim800 => &["+CSQN: 21,0"],
            Personality::Ec25 => &["+QIND: \"csq\",21,99"],
            Personality::E3372 => &[
                "^RSSI: 21",
                "^BOOT:20211254,0,0,0,72",
                "^HCSQ:\"LTE\",50,42,157,28",
            ],
        }
    }

    /// Default period of [`Personality::noise`]; `None`: silent unless asked.
    pub fn noise_interval_ms(self) -> Option<u64> {
        match self {
            Personality::Sim800 => None,
            Personality::Ec25 => Some(30_000),
            Personality::E3372 => Some(5_000),
        }
    }

    /// Vendor commands listed by `AT+CLAC` on top of the standard set.
    pub fn vendor_commands(self) -> &'static [&'static str] {
        match self {
            Personality::Sim800 => &["+CCID", "+CSQN", "+CBC"],
            Personality::Ec25 => &["+QCCID", "+QINDCFG", "+QCFG"],
            Personality::E3372 => &["^ICCID", "^HCSQ", "^SYSCFGEX", "^DTMF", "^PORTSEL"],
        }
    }
}

impl fmt::Display for Personality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Personality {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Personality::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown personality {s:?} (sim800, ec25, e3372)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Personality::ALL {
            assert_eq!(p.name().parse::<Personality>(), Ok(p));
        }
        assert!("nokia".parse::<Personality>().is_err());
    }
}
