//! Fuzzing entry point for what ntpq does with a server's variables (the `ntpq_variables`
//! target in `fuzz/` and the corpus regression test): parse them, and render them as `rv`, as
//! a billboard row, as JSON and as `mrulist` rows.

use std::net::IpAddr;

use sundial_proto::control::parse_association_list;
use sundial_proto::time::UnixTime;

use super::escape::escaped_varlist;
use super::json::Object;
use super::peer_json;
use super::peers::{Options, PeerLine};
use super::readvar::{Subject, render_associations, render_variables};

/// Any response data (after a two-octet status word) renders without a panic, and nothing
/// rendered carries a control character other than the newlines ntpq writes itself.
///
/// # Panics
/// If a property is violated (a bug, which is what fuzzing looks for).
pub fn fuzz_variables(data: &[u8]) {
    let (status, body) = match data {
        [s0, s1, body @ ..] => (u16::from_be_bytes([*s0, *s1]), body),
        _ => (0, data),
    };
    let vars = escaped_varlist(body);
    let now = UnixTime::new(1_795_760_550, 0);
    let mut texts = Vec::new();
    for subject in [Subject::System, Subject::Peer(1), Subject::Clock(0)] {
        for names_given in [false, true] {
            texts.push(render_variables(subject, status, &vars, names_given, now));
        }
    }
    let mut reverse = |addr: IpAddr| format!("host-{addr}");
    for (numeric, wide) in [(true, false), (false, true)] {
        let options = Options { numeric, wide };
        let line = PeerLine::new(status, &vars, 0xec00_0000, options, &mut reverse);
        texts.push(line.render(options));
        let json = peer_json(1, &line).finish();
        assert_inert(&json, false);
    }
    texts.push(render_associations(&parse_association_list(body)));
    let page = super::mrulist::parse_page(body);
    let end = page.now.unwrap_or_default();
    for entry in &page.entries {
        texts.push(super::mrulist::render_row(
            entry,
            end,
            &entry.addr.ip().to_string(),
        ));
    }
    for text in &texts {
        assert_inert(text, true);
    }
    let mut variables = Object::new();
    for (name, value) in &vars {
        variables = variables.variable(name, value);
    }
    assert_inert(
        &Object::new().object("variables", variables).finish(),
        false,
    );
}

fn assert_inert(text: &str, newlines: bool) {
    assert!(
        !text
            .chars()
            .any(|c| c.is_control() && !(newlines && c == '\n')),
        "control character in output: {text:?}"
    );
}
