//! The command line: run the proxy, check a config, or run the demo.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use onezone_migration_proxy::config::{
    ConfigError, FileConfig, Overrides, Settings, DEFAULT_CONFIG,
};
use onezone_migration_proxy::server::ConfigSource;
use onezone_migration_proxy::{report, routes, server};

/// A reverse proxy for Onedata's Onezone that keeps clients of the deprecated token endpoints
/// working by serving them through the tokens API, and passes every other call through.
#[derive(Parser, Debug)]
#[command(name = "onezone-migration-proxy", version, about, long_about = None)]
struct Cli {
    /// Configuration file (TOML). Without it the built-in default configuration is used.
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Plain HTTP listen address; replaces `listen.http`.
    #[arg(long, value_name = "ADDR", global = true)]
    listen: Option<String>,
    /// Onezone URL, e.g. https://onezone.example.org; replaces `upstream.url`.
    #[arg(long, value_name = "URL", global = true)]
    upstream: Option<String>,
    /// Metrics and health listen address; replaces `listen.metrics`.
    #[arg(long, value_name = "ADDR", global = true)]
    metrics_listen: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the proxy (the default).
    Run,
    /// Validate a configuration file and print the effective configuration; exit 0 or 1.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Run an embedded Onezone stand-in on loopback with the proxy in front of it, and print
    /// curl commands to try. Ctrl-C stops both.
    #[cfg(feature = "demo")]
    Demo,
    /// List the deprecated endpoints the proxy serves.
    Routes,
    /// Who still calls the deprecated operations: one report merged from JSON access logs and
    /// from running replicas' caller tables.
    Report {
        /// JSON access logs (`log.format = "json"`): files, plain or gzip, or `-` for standard
        /// input, e.g. `kubectl logs -l app=onezone-migration-proxy --prefix | ... report -`.
        #[arg(value_name = "LOG")]
        logs: Vec<String>,
        /// A running replica's admin listener, e.g. `http://10.0.0.5:9090` (repeatable).
        #[arg(long = "from", value_name = "URL")]
        from: Vec<String>,
        /// Also list the operations nobody called in this long, e.g. `14d`: the ones ready to
        /// be switched to `reject`.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        quiet_since: Option<std::time::Duration>,
        /// `table` (fits 100 columns), `json` (for scripts) or `html` (a self-contained page).
        #[arg(long, value_enum, default_value_t)]
        format: report::Format,
    },
}

impl Cli {
    fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen.clone(),
            upstream: self.upstream.clone(),
            metrics_listen: self.metrics_listen.clone(),
        }
    }

    /// The file config (given or built-in) with the command-line overrides applied.
    fn file_config(&self, path: Option<&PathBuf>) -> Result<(FileConfig, String), ConfigError> {
        let (mut file, name) = match path {
            Some(p) => (FileConfig::load(p)?, p.display().to_string()),
            None => (
                FileConfig::parse(DEFAULT_CONFIG, "built-in default")?,
                "built-in default".into(),
            ),
        };
        file.apply(&self.overrides());
        Ok((file, name))
    }
}

/// jemalloc: Pingora allocates and frees several large buffers and futures per request, where
/// glibc's malloc took about a fifth of the proxy's instructions (callgrind: 12% fewer
/// instructions per pass-through request; about 3.5 MiB more RSS with 1,000 idle clients).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::CheckConfig { file }) => check_config(&cli, file),
        Some(Command::Routes) => print_quietly(&routes_table()),
        Some(Command::Report {
            logs,
            from,
            quiet_since,
            format,
        }) => migration_report(logs, from, *quiet_since, *format),
        #[cfg(feature = "demo")]
        Some(Command::Demo) => demo(&cli),
        Some(Command::Run) | None => run(&cli),
    }
}

fn migration_report(
    logs: &[String],
    from: &[String],
    quiet_since: Option<std::time::Duration>,
    format: report::Format,
) -> ExitCode {
    use std::io::IsTerminal;
    if logs.is_empty() && from.is_empty() {
        eprintln!("error: give access logs (or - for standard input) and/or --from URL");
        return ExitCode::FAILURE;
    }
    let args = report::ReportArgs {
        sources: logs.iter().chain(from).cloned().collect(),
        quiet_since,
        format,
        now: std::time::SystemTime::now(),
    };
    let mut out = std::io::stdout().lock();
    match report::run(args, &mut out, std::io::stderr().is_terminal()) {
        Ok(_) => ExitCode::SUCCESS,
        // A reader that went away (`| head`) is not an error.
        Err(e) if e.contains("Broken pipe") => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(cli: &Cli, file: &PathBuf) -> ExitCode {
    match cli
        .file_config(Some(file))
        .and_then(|(f, name)| f.validate(&name).map(|_| f))
    {
        Ok(f) => {
            let printed = print_quietly(&f.to_toml());
            eprintln!("{}: ok", file.display());
            printed
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load(cli: &Cli) -> Result<(Settings, ConfigSource), ConfigError> {
    let (file, name) = cli.file_config(cli.config.as_ref())?;
    let settings = file.validate(&name)?;
    let source = ConfigSource {
        path: cli.config.clone(),
        overrides: cli.overrides(),
        file,
    };
    Ok((settings, source))
}

fn run(cli: &Cli) -> ExitCode {
    let (settings, source) = match load(cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    onezone_migration_proxy::logs::init(&settings);
    start(settings, source)
}

fn start(settings: Settings, source: ConfigSource) -> ExitCode {
    tracing::info!(
        upstream = %settings.upstream.base_url(),
        http = ?settings.listen.http,
        metrics = ?settings.listen.metrics,
        "starting"
    );
    match server::build(settings, source) {
        Ok(s) => {
            server::run(s);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints to standard output; a reader that went away (`| head`) ends the command quietly,
/// as it does for Unix tools.
fn print_quietly(text: &str) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write to standard output: {e}");
            ExitCode::FAILURE
        }
    }
}

fn routes_table() -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<7} {:<52} {:<21} {:<12} operation",
        "method", "path", "invite type", "target key"
    );
    for r in routes::ROUTES {
        let (invite_type, target_key) = match r.rewrite {
            Some(routes::Rewrite::Invite(i)) => (i.invite_type, i.target_key),
            Some(_) => ("-", "-"),
            None => ("(annotate only)", "-"),
        };
        let _ = writeln!(
            out,
            "{:<7} {:<52} {:<21} {:<12} {}",
            r.method, r.template, invite_type, target_key, r.operation
        );
    }
    out
}

/// The demo: the stand-in (crates/onezone-standin) on loopback, the proxy in front of it.
#[cfg(feature = "demo")]
fn demo(cli: &Cli) -> ExitCode {
    use onezone_standin::demo;
    let standin_addr = match demo::spawn() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("error: cannot start the Onezone stand-in: {e}");
            return ExitCode::FAILURE;
        }
    };
    let demo_cli = Cli {
        config: cli.config.clone(),
        listen: cli.listen.clone().or(Some("127.0.0.1:8080".into())),
        upstream: Some(format!("http://{standin_addr}")),
        metrics_listen: cli.metrics_listen.clone().or(Some("127.0.0.1:9090".into())),
        command: None,
    };
    let (settings, source) = match load(&demo_cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    onezone_migration_proxy::logs::init(&settings);
    let proxy = settings
        .listen
        .http
        .first()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let metrics = settings
        .listen
        .metrics
        .map(|a| a.to_string())
        .unwrap_or_default();
    let text = demo::curl_commands(
        &proxy,
        &metrics,
        &standin_addr.to_string(),
        &settings.onezone.api_prefix,
    );
    let _ = print_quietly(&format!("{text}\n"));
    start(settings, source)
}
