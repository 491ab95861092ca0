//! `includefile`: relative paths, directories, cycles, depth, missing files.

use std::path::Path;

use super::{TempDir, positions};
use crate::config::*;

fn servers(config: &Config) -> Vec<String> {
    config
        .associations
        .iter()
        .map(|a| a.address.to_string())
        .collect()
}

#[test]
fn relative_includes_resolve_against_the_including_files_directory() {
    let dir = TempDir::new("relative_includes");
    let top = dir.write(
        "etc/ntp.conf",
        "includefile ntp.d/servers.conf\nserver local.example\n",
    );
    dir.write(
        "etc/ntp.d/servers.conf",
        "server a.example\nincludefile more/extra.conf\n",
    );
    dir.write(
        "etc/ntp.d/more/extra.conf",
        "server b.example\nservre typo.example\n",
    );
    let (config, findings) = load(&top).unwrap();
    assert_eq!(
        servers(&config),
        ["a.example", "b.example", "local.example"]
    );
    assert_eq!(
        config.associations[0].location.file,
        dir.path().join("etc/ntp.d/servers.conf")
    );
    // A finding inside an included file names that file.
    assert_eq!(findings.len(), 1);
    assert_eq!(
        findings[0].location,
        Location::new(dir.path().join("etc/ntp.d/more/extra.conf"), 2, 1)
    );
}

#[test]
fn absolute_includes_and_parse_str_anchoring() {
    let dir = TempDir::new("absolute_includes");
    let servers_file = dir.write("servers.conf", "server a.example\n");
    let text = format!(
        "includefile {}\nincludefile servers.conf\n",
        servers_file.display()
    );
    // The top file need not exist: it only anchors relative paths.
    let (config, findings) = parse_str(&text, &dir.path().join("virtual.conf"));
    assert!(findings.is_empty(), "{findings:#?}");
    assert_eq!(servers(&config), ["a.example", "a.example"]);
}

#[test]
fn a_directory_include_reads_its_conf_files_in_name_order() {
    let dir = TempDir::new("directory_include");
    let top = dir.write("ntp.conf", "includefile conf.d\n");
    dir.write("conf.d/20-b.conf", "server b.example\n");
    dir.write("conf.d/10-a.conf", "server a.example\n");
    dir.write("conf.d/README", "server readme.example\n");
    dir.write("conf.d/.hidden.conf", "server hidden.example\n");
    dir.write("conf.d/nested.conf/x.conf", "server nested.example\n");
    let (config, findings) = load(&top).unwrap();
    assert!(findings.is_empty(), "{findings:#?}");
    assert_eq!(servers(&config), ["a.example", "b.example"]);
}

#[test]
fn include_cycles_are_reported_and_the_rest_still_loads() {
    let dir = TempDir::new("include_cycle");
    let a = dir.write(
        "a.conf",
        "server one.example\nincludefile b.conf\nserver three.example\n",
    );
    let b = dir.write(
        "b.conf",
        "includefile ./sub/../a.conf\nserver two.example\n",
    );
    dir.write("sub/keep", "");
    let (config, findings) = load(&a).unwrap();
    assert_eq!(
        servers(&config),
        ["one.example", "two.example", "three.example"]
    );
    assert_eq!(
        positions(&findings, Severity::Error),
        ["1:13 ./sub/../a.conf"]
    );
    assert_eq!(findings[0].location.file, b);
    assert!(
        findings[0].message.starts_with("include cycle: "),
        "{}",
        findings[0].message
    );
    assert!(findings[0].message.contains(" -> "));
}

#[test]
fn a_file_including_itself_is_a_cycle() {
    let dir = TempDir::new("self_include");
    let top = dir.write("ntp.conf", "server a.example\nincludefile ntp.conf\n");
    let (config, findings) = load(&top).unwrap();
    assert_eq!(servers(&config), ["a.example"]);
    assert_eq!(positions(&findings, Severity::Error), ["2:13 ntp.conf"]);
}

#[test]
fn including_one_file_twice_without_a_cycle_is_allowed() {
    let dir = TempDir::new("diamond_include");
    let top = dir.write("ntp.conf", "includefile a.conf\nincludefile b.conf\n");
    dir.write("a.conf", "includefile common.conf\n");
    dir.write("b.conf", "includefile common.conf\n");
    dir.write("common.conf", "server common.example\n");
    let (config, findings) = load(&top).unwrap();
    assert!(findings.is_empty(), "{findings:#?}");
    assert_eq!(servers(&config), ["common.example", "common.example"]);
}

#[test]
fn nesting_deeper_than_five_is_an_error() {
    let dir = TempDir::new("include_depth");
    for depth in 0..=6 {
        let text = format!("server d{depth}.example\nincludefile d{}.conf\n", depth + 1);
        dir.write(&format!("d{depth}.conf"), text);
    }
    let (config, findings) = load(&dir.path().join("d0.conf")).unwrap();
    assert_eq!(servers(&config).len(), MAX_INCLUDE_DEPTH + 1);
    let errors: Vec<_> = findings.iter().filter(|f| f.is_error()).collect();
    assert_eq!(errors.len(), 1, "{findings:#?}");
    assert_eq!(errors[0].location.file, dir.path().join("d5.conf"));
    assert!(errors[0].message.contains("deeper than 5"));
}

#[test]
fn a_missing_includefile_is_a_finding_not_a_failure() {
    let dir = TempDir::new("missing_include");
    let top = dir.write("ntp.conf", "includefile missing.conf\nserver a.example\n");
    let (config, findings) = load(&top).unwrap();
    assert_eq!(servers(&config), ["a.example"]);
    assert_eq!(positions(&findings, Severity::Error), ["1:13 missing.conf"]);
    assert!(findings[0].message.starts_with("cannot read includefile "));
}

#[test]
fn a_device_is_not_read_as_an_includefile() {
    let (config, findings) = parse_str(
        "includefile /dev/zero\nserver a.example",
        Path::new("/x/ntp.conf"),
    );
    assert_eq!(servers(&config), ["a.example"]);
    assert_eq!(positions(&findings, Severity::Error), ["1:13 /dev/zero"]);
}

#[test]
fn includefile_fan_out_is_bounded_by_the_lines_read() {
    // Six small files, each including the next forty times: 40^5 reads without a budget.
    let dir = TempDir::new("include_bomb");
    for level in 0..6 {
        let body = if level < 5 {
            format!("includefile level{}.conf\n", level + 1).repeat(40)
        } else {
            "server a.example\n".repeat(40)
        };
        dir.write(&format!("level{level}.conf"), body);
    }
    let started = std::time::Instant::now();
    let (config, findings) = load(&dir.path().join("level0.conf")).unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let errors: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].message.contains("longer than 100000 lines"),
        "{}",
        errors[0]
    );
    // The finding names a line of one of the files.
    assert!(errors[0].location.file.starts_with(dir.path()));
    assert!(errors[0].location.line >= 1 && errors[0].location.line <= 40);
    // Everything up to the budget was read; nothing past it.
    let servers = config.associations.len() as u64;
    assert!(servers > 0 && servers < MAX_TOTAL_LINES, "{servers}");
}

#[test]
fn includefiles_are_bounded_by_the_octets_read() {
    // Few lines, but long ones: the byte budget stops it.
    let dir = TempDir::new("include_bytes");
    let comment = format!("# {}\n", "x".repeat(60_000));
    dir.write("big.conf", comment.repeat(20));
    let top = dir.write("ntp.conf", "includefile big.conf\n".repeat(10));
    let (_, findings) = load(&top).unwrap();
    let errors: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].message.contains("octets in all"), "{}", errors[0]);
    assert_eq!(errors[0].location.file, top);
    assert_eq!(errors[0].location.line, 4, "the fourth copy passes 4 MiB");
}

#[test]
fn an_includefile_that_is_a_fifo_is_refused_without_waiting() {
    let dir = TempDir::new("include_fifo");
    let fifo = dir.path().join("fifo.conf");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let top = dir.write("ntp.conf", "includefile fifo.conf\n");
    let (_, findings) = load(&top).unwrap();
    assert!(
        findings[0].message.contains("not a regular file"),
        "{findings:#?}"
    );
}
