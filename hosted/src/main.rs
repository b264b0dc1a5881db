fn main() {
    eprintln!("ironflow-hosted: not wired yet");
    std::process::exit(2);
}
