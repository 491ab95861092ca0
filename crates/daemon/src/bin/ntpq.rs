//! The `ntpq` binary; everything lives in [`sundial::ntpq`].
fn main() -> std::process::ExitCode {
    sundial::ntpq::main()
}
