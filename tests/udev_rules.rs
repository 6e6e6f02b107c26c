//! `udev/60-smsgate.rules`, read with smsgate's own udev(7) reader: every rule
//! that matches a modem vendor marks the AT port the same way (ModemManager
//! off, dialout 0660, an `smsgate/...-at` link) and says in a comment what it
//! matches and where the interface number comes from.

use std::path::Path;

use smsgate::udev_rules::{parse, Operator, Rule};

fn shipped() -> Vec<Rule> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("udev/60-smsgate.rules");
    let text = std::fs::read_to_string(&path).unwrap();
    parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn vendor_rules(rules: &[Rule]) -> Vec<&Rule> {
    rules
        .iter()
        .filter(|r| {
            r.value("ATTRS", Some("idVendor"), Operator::Match)
                .is_some()
        })
        .collect()
}

#[test]
fn every_vendor_rule_marks_the_at_port_completely() {
    let rules = shipped();
    let vendors = vendor_rules(&rules);
    assert!(vendors.len() >= 7, "{} vendor rules", vendors.len());
    for rule in vendors {
        let at = format!("rule at line {}", rule.line);
        assert_eq!(
            rule.value("SUBSYSTEM", None, Operator::Match),
            Some("tty"),
            "{at}"
        );
        assert_eq!(
            rule.value("ENV", Some("ID_MM_DEVICE_IGNORE"), Operator::Assign),
            Some("1"),
            "{at}: ModemManager must leave the port alone"
        );
        assert_eq!(
            rule.value("GROUP", None, Operator::Assign),
            Some("dialout"),
            "{at}"
        );
        assert_eq!(
            rule.value("MODE", None, Operator::Assign),
            Some("0660"),
            "{at}"
        );
        let link = rule
            .value("SYMLINK", None, Operator::Add)
            .unwrap_or_else(|| panic!("{at}: no SYMLINK+="));
        assert!(
            link.starts_with("smsgate/") && link.ends_with("-at"),
            "{at}: {link}"
        );
        // The port is told apart by interface number, or (Huawei) by the
        // interface's class/subclass/protocol.
        let interface = rule
            .value("ENV", Some("ID_USB_INTERFACE_NUM"), Operator::Match)
            .or_else(|| rule.value("ENV", Some(".SMSGATE_IFCLASS"), Operator::Match));
        assert!(interface.is_some(), "{at}: which interface is the AT port?");
        // A comment names the vendor and the interface.
        let comment = rule.comments.join(" ").to_ascii_lowercase();
        let vendor = rule
            .value("ATTRS", Some("idVendor"), Operator::Match)
            .unwrap_or_default();
        let name = match vendor {
            "2c7c" => "quectel",
            "1e0e" => "simcom",
            "12d1" => "huawei",
            "1199" => "sierra",
            "1546" => "u-blox",
            "1bc7" => "telit",
            "19d2" => "zte",
            other => panic!("{at}: vendor {other} has no name in this test"),
        };
        assert!(
            comment.contains(name),
            "{at}: comment should name {name}: {comment:?}"
        );
        assert!(
            comment.contains("interface"),
            "{at}: comment should name the interface: {comment:?}"
        );
        if let Some(product) = rule.value("ATTRS", Some("idProduct"), Operator::Match) {
            assert!(
                comment.contains(&format!("{vendor}:{product}")),
                "{at}: comment should give {vendor}:{product}"
            );
        }
    }
}

#[test]
fn the_seven_families_are_covered() {
    let rules = shipped();
    let vendors: std::collections::HashSet<_> = vendor_rules(&rules)
        .iter()
        .filter_map(|r| r.value("ATTRS", Some("idVendor"), Operator::Match))
        .collect();
    for v in ["2c7c", "1e0e", "12d1", "1199", "1546", "1bc7", "19d2"] {
        assert!(vendors.contains(v), "no rule for vendor {v}");
    }
}

#[test]
fn the_known_at_interfaces() {
    // From ModemManager's port-type rules and qcserial.c (cited in the file).
    let rules = shipped();
    let interface = |vendor: &str, product: &str| {
        vendor_rules(&rules)
            .into_iter()
            .find(|r| {
                r.value("ATTRS", Some("idVendor"), Operator::Match) == Some(vendor)
                    && r.value("ATTRS", Some("idProduct"), Operator::Match) == Some(product)
            })
            .and_then(|r| r.value("ENV", Some("ID_USB_INTERFACE_NUM"), Operator::Match))
            .map(str::to_string)
    };
    assert_eq!(
        interface("2c7c", "0125").as_deref(),
        Some("02"),
        "Quectel EC25"
    );
    assert_eq!(
        interface("1e0e", "9001").as_deref(),
        Some("02"),
        "SIMCom SIM7600"
    );
    assert_eq!(
        interface("1199", "9071").as_deref(),
        Some("03"),
        "Sierra EM7455"
    );
}

#[test]
fn the_file_skips_removals_and_non_tty_devices() {
    let rules = shipped();
    let first = &rules[0];
    assert_eq!(first.value("ACTION", None, Operator::Match), Some("remove"));
    assert!(first.value("GOTO", None, Operator::Assign).is_some());
    assert_eq!(
        rules[1].value("SUBSYSTEM", None, Operator::NoMatch),
        Some("tty")
    );
    let last = rules.last().unwrap();
    assert_eq!(
        last.value("LABEL", None, Operator::Assign),
        Some("smsgate_end")
    );
}
