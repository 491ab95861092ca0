//! The `ntpdate` binary; everything lives in [`sundial::ntpdate`].
fn main() -> std::process::ExitCode {
    sundial::ntpdate::main()
}
