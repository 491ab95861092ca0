//! The `ntpd` binary; everything lives in [`sundial::ntpd`].
fn main() -> std::process::ExitCode {
    sundial::ntpd::main()
}
