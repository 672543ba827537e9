//! `airlock`: the command line. Argument parsing and wiring only; the logic lives in the
//! library crates so tests can call it without spawning processes.

// Output goes through `console` (outln!/errln!), which survives a closed pipe.
#![deny(clippy::print_stdout, clippy::print_stderr)]

use airlock_audit::{AuditStore, SqliteStore};
use airlock_core::manifest::TaskManifest;
use airlock_engine::approval::ApprovalMode;
use airlock_engine::{Engine, Outcome, Reporter, RunSpec};
use airlock_review::{
    AnyApprover, Decision, Principal, QueueControl, ReviewError, ReviewStore, WebApprover,
};
use anyhow::{anyhow, bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// The console. Every line for the user goes through here, never `println!`: a reader that
/// went away (`airlock run … | head -2`, `audit show latest | head -1`) or a closed stderr
/// is not an error and never a panic. The command goes on (a run still finishes and is
/// sealed) and simply prints nothing more to that stream.
mod console {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};

    static STDOUT_GONE: AtomicBool = AtomicBool::new(false);
    static STDERR_GONE: AtomicBool = AtomicBool::new(false);

    pub fn out(args: std::fmt::Arguments<'_>, newline: bool) {
        write(&mut std::io::stdout().lock(), &STDOUT_GONE, args, newline);
    }

    pub fn err(args: std::fmt::Arguments<'_>, newline: bool) {
        write(&mut std::io::stderr().lock(), &STDERR_GONE, args, newline);
    }

    fn write(w: &mut dyn Write, gone: &AtomicBool, args: std::fmt::Arguments<'_>, nl: bool) {
        if gone.load(Ordering::Relaxed) {
            return;
        }
        let result = w
            .write_fmt(args)
            .and_then(|()| if nl { w.write_all(b"\n") } else { Ok(()) })
            .and_then(|()| w.flush());
        if result.is_err() {
            gone.store(true, Ordering::Relaxed);
        }
    }
}

macro_rules! outln {
    () => { console::out(format_args!(""), true) };
    ($($arg:tt)*) => { console::out(format_args!($($arg)*), true) };
}
macro_rules! out {
    ($($arg:tt)*) => { console::out(format_args!($($arg)*), false) };
}
macro_rules! errln {
    ($($arg:tt)*) => { console::err(format_args!($($arg)*), true) };
}
macro_rules! err {
    ($($arg:tt)*) => { console::err(format_args!($($arg)*), false) };
}

/// Documented exit codes (also in the README).
mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const NOT_VERIFIED: u8 = 3;
    pub const APPROVAL_DENIED: u8 = 4;
    pub const BUDGET: u8 = 5;
    pub const MODEL: u8 = 6;
    pub const SANDBOX: u8 = 7;
    pub const AUDIT_BROKEN: u8 = 8;
    /// `airlock eval`: a scenario's expectation failed (or it could not run).
    pub const EVAL_FAILED: u8 = 9;
    /// `airlock audit verify`: no chain is broken, but a run is not sealed (still going, or its
    /// host died: `airlock recover` seals it).
    pub const AUDIT_UNSEALED: u8 = 10;
}

#[derive(Parser)]
#[command(
    name = "airlock",
    version,
    about = "A host for computer-use agents: the model proposes, the host disposes.",
    long_about = "Airlock runs a model's proposed clicks, keystrokes and navigations in a disposable \
Chromium, gating every action against the task manifest, pausing risky steps for a human, \
recording a tamper-evident audit before anything executes, and verifying the result itself.",
    after_help = "Exit codes: 0 verified success, 1 error, 2 usage or manifest refused, 3 not verified, \
4 approval denied, 5 budget exhausted, 6 model/transcript error, 7 sandbox error, 8 audit chain broken, \
9 an eval scenario's expectation failed, 10 audit chain intact but a run not sealed."
)]
struct Cli {
    /// State directory (SQLite audit `airlock.db` and `blobs/`).
    #[arg(long, global = true, env = "AIRLOCK_HOME", default_value = ".airlock")]
    home: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a task manifest with a model, gating and recording every action.
    Run(RunArgs),
    /// Inspect and verify the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Serve the bundled CI dashboard and incident tracker on loopback.
    Portal(PortalArgs),
    /// Find runs whose airlock process died, clean up what survived and seal them as aborted.
    Recover,
    /// Read, check and explain Cedar policies.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Serve the review web UI and API: approval queue, live runs, stop, replay.
    Serve(ServeArgs),
    /// The approval queue from the terminal (you act as an operator, recorded as your OS
    /// account: `terminal:NAME@HOST (uid N)`).
    Approvals {
        #[command(subcommand)]
        command: ApprovalsCommand,
    },
    /// Stop a running run before its next action (same as `airlock runs stop`).
    Stop {
        /// A run id or `latest`.
        run: String,
        /// Why (recorded in the audit).
        #[arg(long, default_value = "stopped by the operator")]
        reason: String,
        /// Also record NAME beside your OS account (only if the operator set
        /// AIRLOCK_ALLOW_TERMINAL_AS=1).
        #[arg(long = "as", value_name = "NAME")]
        as_name: Option<String>,
    },
    /// Stop a run, or release a stopped run that is frozen for inspection.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// Write a run's replay: one self-contained HTML file (images embedded, no network).
    Replay(ReplayArgs),
    /// Manage reviewer accounts and API tokens (stored hashed in HOME/review.db).
    Reviewers {
        #[command(subcommand)]
        command: ReviewersCommand,
    },
    /// Run a suite of scenarios (each in a fresh portal, audit home and sandbox), a line on
    /// stderr as each finishes; print the metrics and write them as JSON, Markdown and JUnit
    /// XML, keeping every scenario's audit home; exit 9 if any expectation failed.
    Eval(EvalArgs),
    /// Serve a task to an MCP client as a gated browser: one session is one run.
    Mcp(McpArgs),
}

#[derive(clap::Args)]
struct EvalArgs {
    /// A folder of scenarios (sub-folders with a scenario.toml), e.g. suites/redteam.
    suite: PathBuf,
    /// Scenarios run at the same time.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Where report.json, report.md, junit.xml and each scenario's audit home (homes/NAME,
    /// replaced on every eval) go (default: HOME/eval/SUITE).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Only scenarios whose name contains TEXT.
    #[arg(long, value_name = "TEXT", default_value = "")]
    filter: String,
    /// Chromium binary (default: Debian's /usr/lib/chromium/chromium, or AIRLOCK_CHROMIUM).
    #[arg(long)]
    chromium: Option<PathBuf>,
}

#[derive(clap::Args)]
#[command(
    after_help = "On stdio (the default) stdin and stdout carry the protocol, so \
approvals cannot be asked on the terminal: they wait on the review queue (`--approvals web`, the \
default; decide with `airlock serve` or `airlock approvals approve ID`). Logs go to stderr. With \
--http the bearer token comes from AIRLOCK_MCP_TOKEN, or is generated and printed to stderr."
)]
struct McpArgs {
    /// The task manifest (TOML) every session runs.
    #[arg(long)]
    task: PathBuf,
    /// Serve streamable HTTP on this loopback address (e.g. 127.0.0.1:8931) instead of stdio;
    /// each MCP session gets its own run.
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// With --http: sessions (each a run with its own browser) at a time; more are refused.
    #[arg(long, default_value_t = 4, value_name = "N")]
    max_sessions: usize,
    /// What happens when a step needs approval (`prompt` only with --http).
    #[arg(long, value_enum, default_value_t = Approvals::Web)]
    approvals: Approvals,
    /// With --approvals web: seconds a request waits for a reviewer before it is denied.
    #[arg(long, default_value_t = 900, value_name = "SECS")]
    approval_timeout: u64,
    /// An operator Cedar policy file added to Airlock's defaults (repeatable).
    #[arg(long = "policy", value_name = "FILE")]
    policies: Vec<PathBuf>,
    /// Chromium binary (default: Debian's /usr/lib/chromium/chromium, or AIRLOCK_CHROMIUM).
    #[arg(long)]
    chromium: Option<PathBuf>,
    /// Run the browser without namespaces (recorded in the audit); see `airlock run --help`.
    #[arg(long)]
    insecure_no_sandbox: bool,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on. Non-loopback addresses need --allow-remote.
    #[arg(long, default_value = airlock_server::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Allow listening on a non-loopback address (put TLS in front; see --secure-cookies).
    #[arg(long)]
    allow_remote: bool,
    /// Extra Host names to answer to, e.g. the name a reverse proxy forwards (repeatable).
    #[arg(long = "host", value_name = "HOST[:PORT]")]
    hosts: Vec<String>,
    /// Mark session cookies Secure (when a proxy serves the UI over HTTPS).
    #[arg(long)]
    secure_cookies: bool,
}

#[derive(Subcommand)]
enum ApprovalsCommand {
    /// List pending requests (with --all, recent decisions too).
    List {
        /// Also list the 50 most recent decided, expired and cancelled requests.
        #[arg(long)]
        all: bool,
    },
    /// Approve a pending request.
    Approve {
        /// Request id (`apr-…`, from `airlock approvals list`).
        id: String,
        /// Why (recorded in the audit).
        #[arg(long, default_value = "")]
        reason: String,
        /// Also record NAME beside your OS account (only if the operator set
        /// AIRLOCK_ALLOW_TERMINAL_AS=1).
        #[arg(long = "as", value_name = "NAME")]
        as_name: Option<String>,
    },
    /// Deny a pending request.
    Deny {
        /// Request id (`apr-…`, from `airlock approvals list`).
        id: String,
        /// Why (required; recorded in the audit and told to the run).
        #[arg(long)]
        reason: String,
        /// Also record NAME beside your OS account (only if the operator set
        /// AIRLOCK_ALLOW_TERMINAL_AS=1).
        #[arg(long = "as", value_name = "NAME")]
        as_name: Option<String>,
    },
}

#[derive(Subcommand)]
enum RunsCommand {
    /// Ask a running run to stop before its next action.
    Stop {
        /// A run id or `latest`.
        run: String,
        /// Why (required; recorded in the audit).
        #[arg(long)]
        reason: String,
        /// Also record NAME beside your OS account (only if the operator set
        /// AIRLOCK_ALLOW_TERMINAL_AS=1).
        #[arg(long = "as", value_name = "NAME")]
        as_name: Option<String>,
    },
    /// Let a stopped, frozen run be torn down now.
    Release {
        /// A run id or `latest`.
        run: String,
        /// Why (recorded in the audit).
        #[arg(long, default_value = "")]
        reason: String,
        /// Also record NAME beside your OS account (only if the operator set
        /// AIRLOCK_ALLOW_TERMINAL_AS=1).
        #[arg(long = "as", value_name = "NAME")]
        as_name: Option<String>,
    },
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// A run id or `latest`.
    run: String,
    /// Output file (default: airlock-replay-RUN.html).
    #[arg(short, long)]
    output: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ReviewersCommand {
    /// Add a reviewer. The password comes from AIRLOCK_REVIEWER_PASSWORD, else the first line
    /// of stdin.
    Add {
        /// The reviewer's login name.
        name: String,
        /// viewer (sees), reviewer (also approves and denies), operator (also stops runs and
        /// manages reviewers).
        #[arg(long)]
        role: airlock_review::Role,
    },
    /// List reviewers.
    List,
    /// Remove a reviewer and their tokens.
    Remove {
        /// The reviewer's login name.
        name: String,
    },
    /// Issue an API bearer token for a reviewer (printed once; only its hash is kept).
    Token {
        /// The reviewer's login name.
        name: String,
        /// A note to tell tokens apart (e.g. where it is used), shown on the web UI's
        /// reviewers page.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Revoke an API token by its id (`tok-…`).
    Revoke {
        /// The token's id (`tok-…`, printed when it was issued).
        id: String,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Print Airlock's default policy set (Cedar), with the schema it is validated against.
    Defaults {
        /// Print the schema instead of the policies.
        #[arg(long)]
        schema: bool,
    },
    /// Validate a policy file against Airlock's schema (non-zero exit with line and reason).
    Check {
        /// The Cedar policy file to check.
        file: PathBuf,
    },
    /// Show which rules decided the actions of a recorded step.
    Explain {
        /// The task manifest the run used.
        task: PathBuf,
        /// A run id or `latest`.
        run: String,
        /// The step number.
        step: u32,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// The task manifest (TOML).
    task: PathBuf,
    /// Who proposes actions: `anthropic:MODEL`, `openai:MODEL`, `gemini:MODEL`,
    /// `openai-compat:MODEL` (keys from ANTHROPIC_API_KEY / OPENAI_API_KEY / GEMINI_API_KEY,
    /// base URLs from *_BASE_URL), or `scripted:FILE.jsonl` to replay a recorded transcript
    /// (checked whole before any browser starts; a faulty one exits 6 naming the line).
    #[arg(long, value_name = "PROVIDER:ARG")]
    model: String,
    /// Force a vendor tool version (e.g. `computer_20251124`, `computer_use_preview`).
    #[arg(long)]
    tool_version: Option<String>,
    /// Write every model turn to FILE as a transcript `--model scripted:FILE` can replay.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Screenshots kept in the model's context.
    #[arg(long, default_value_t = 3)]
    keep_screenshots: usize,
    /// A JSON price table for cost accounting (model name or `prefix*` → prices).
    #[arg(long, value_name = "FILE")]
    prices: Option<PathBuf>,
    /// What happens when a step needs approval.
    #[arg(long, value_enum, default_value_t = Approvals::Prompt)]
    approvals: Approvals,
    /// Print the final report as JSON on stdout (step lines go to stderr).
    #[arg(long)]
    json: bool,
    /// Chromium binary (default: Debian's /usr/lib/chromium/chromium, or AIRLOCK_CHROMIUM).
    #[arg(long)]
    chromium: Option<PathBuf>,
    /// With --approvals web: seconds a request waits for a reviewer before it is denied.
    #[arg(long, default_value_t = 900, value_name = "SECS")]
    approval_timeout: u64,
    /// An operator Cedar policy file added to Airlock's defaults (repeatable).
    #[arg(long = "policy", value_name = "FILE")]
    policies: Vec<PathBuf>,
    /// Accept `--policy` rules that let high-risk actions (submits, destructive steps) run
    /// without a human. Each such rule must also carry an `@reason("...")`; the audit records it.
    #[arg(long)]
    allow_unattended_high_risk: bool,
    /// Run the browser without namespaces (user, mount, PID, network). Recorded in the audit.
    /// Only for machines that cannot provide namespaces; the egress proxy then is the only
    /// network boundary.
    #[arg(long)]
    insecure_no_sandbox: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Approvals {
    /// Ask on the terminal (denied when there is no terminal).
    Prompt,
    /// Wait on the web approval queue of `airlock serve`.
    Web,
    /// Deny every step that needs approval.
    Deny,
    /// Approve every step that needs approval (recorded as such in the audit).
    ApproveAll,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute hash chains: exit 8 on any edit, deletion, reordering or truncation (or a head
    /// other than --expect-head), 10 when the chains are intact but a run is not sealed.
    Verify {
        /// A run id, `latest`, or nothing for every run in the home.
        run: Option<String>,
        /// Fail (exit 8) unless the run's chain ends at HASH, the `audit head` that
        /// `airlock run` printed and you kept elsewhere. Needs a RUN.
        #[arg(long, value_name = "HASH", requires = "run")]
        expect_head: Option<String>,
    },
    /// List runs, newest first.
    List,
    /// Print a run's events as JSON lines.
    Show {
        /// A run id or `latest`.
        run: String,
    },
}

#[derive(clap::Args)]
struct PortalArgs {
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:8780")]
    listen: SocketAddr,
    /// How long the run search shows its spinner, in milliseconds.
    #[arg(long, default_value_t = 1500)]
    spinner_ms: u64,
}

/// Stop requests from this process's signals.
#[derive(Default)]
struct SignalStop(std::sync::Mutex<Option<String>>);

impl airlock_engine::RunControl for SignalStop {
    fn stop_requested(&self, _run_id: &str) -> Option<(String, String)> {
        self.0
            .lock()
            .ok()?
            .clone()
            .map(|by| (by, "the operator stopped the run".to_string()))
    }
}

struct Terminal {
    to_stderr: bool,
}

impl Reporter for Terminal {
    fn line(&mut self, text: &str) {
        if self.to_stderr {
            errln!("{text}");
        } else {
            outln!("{text}");
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("AIRLOCK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal: never in a pipe, a file or CI logs.
        .with_ansi(color_on_stderr())
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            errln!("airlock: cannot start runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    match rt.block_on(dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            errln!("airlock: {}", error_text(&e));
            ExitCode::from(
                e.downcast_ref::<Usage>()
                    .map_or(exit::ERROR, |_| exit::USAGE),
            )
        }
    }
}

/// Whether stderr is a terminal that wants colour (`NO_COLOR` unset, `TERM` not `dumb`).
fn color_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

/// Whether a person is at this run: a terminal on stdin or stderr, and not CI (`CI` set to
/// anything but `false`/`0`). Decides the default freeze time of a stopped run.
fn interactive() -> bool {
    use std::io::IsTerminal;
    let ci = std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    !ci && (std::io::stdin().is_terminal() || std::io::stderr().is_terminal())
}

/// An error and its causes on one line, each said once: a library error that already quotes
/// its source (`cannot listen on …: Address already in use (os error 98)`) is not followed by
/// that source again.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// An error that is the caller's to fix (exit 2).
#[derive(Debug)]
struct Usage(String);
impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Usage {}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow!(Usage(msg.into()))
}

async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Run(args) => run(&cli.home, args).await,
        Command::Audit { command } => audit(&cli.home, command),
        Command::Portal(args) => portal(args).await,
        Command::Policy { command } => policy(&cli.home, command),
        Command::Recover => recover(&cli.home).await,
        Command::Serve(args) => serve(&cli.home, args).await,
        Command::Approvals { command } => approvals(&cli.home, command),
        Command::Runs { command } => runs(&cli.home, command),
        Command::Stop {
            run,
            reason,
            as_name,
        } => runs(
            &cli.home,
            RunsCommand::Stop {
                run,
                reason,
                as_name,
            },
        ),
        Command::Replay(args) => replay(&cli.home, args),
        Command::Reviewers { command } => reviewers(&cli.home, command),
        Command::Eval(args) => eval(&cli.home, args).await,
        Command::Mcp(args) => mcp(&cli.home, args).await,
    }
}

fn open_review(home: &Path) -> anyhow::Result<Arc<ReviewStore>> {
    Ok(Arc::new(ReviewStore::open(home).with_context(|| {
        format!("cannot open the review queue in `{}`", home.display())
    })?))
}

/// Mistakes the user can fix exit 2; database failures exit 1.
fn review_error(e: ReviewError) -> anyhow::Error {
    match e {
        ReviewError::Io { .. }
        | ReviewError::Sqlite(_)
        | ReviewError::Busy
        | ReviewError::Corrupt(_)
        | ReviewError::Hash(_)
        | ReviewError::Random(_) => anyhow!(e),
        other => usage(other.to_string()),
    }
}

/// The terminal acts as a trusted operator, recorded as its OS account
/// (`terminal:NAME@HOST (uid N)`, from the system, not `$USER`). `--as NAME` adds a name to
/// that record, and only where the operator allows it (`AIRLOCK_ALLOW_TERMINAL_AS=1`).
fn terminal(as_name: Option<&str>) -> anyhow::Result<Principal> {
    let account = airlock_engine::account::OsAccount::current();
    match as_name {
        None => Ok(Principal::terminal(&account)),
        Some(_) if std::env::var(airlock_review::TERMINAL_AS_ENV).as_deref() != Ok("1") => {
            Err(usage(format!(
                "--as is not allowed here: decisions at the terminal are recorded as the OS \
                 account ({account}); an operator can allow --as by setting {}=1",
                airlock_review::TERMINAL_AS_ENV
            )))
        }
        Some(n) => Principal::terminal_as(&account, n).map_err(|e| usage(e.to_string())),
    }
}

async fn serve(home: &Path, args: ServeArgs) -> anyhow::Result<u8> {
    let opts = airlock_server::ServeOptions {
        allow_remote: args.allow_remote,
        extra_hosts: args.hosts,
        secure_cookies: args.secure_cookies,
        ..Default::default()
    };
    match airlock_server::serve(home, args.listen, opts).await {
        Ok(()) => Ok(exit::OK),
        Err(e @ airlock_server::ServerError::NotLoopback(_)) => Err(usage(e.to_string())),
        Err(e) => Err(e.into()),
    }
}

fn approvals(home: &Path, command: ApprovalsCommand) -> anyhow::Result<u8> {
    let review = open_review(home)?;
    let now = airlock_audit::now_ms();
    let decide = |id: &str, d: Decision, reason: &str, as_name: Option<&str>| {
        let who = terminal(as_name)?;
        let done = review
            .decide(id, None, &who, d, reason)
            .map_err(review_error)?;
        outln!("{}", done.line(now));
        Ok(exit::OK)
    };
    match command {
        ApprovalsCommand::List { all } => {
            let list = if all {
                review.recent(50)?
            } else {
                review.pending()?
            };
            if list.is_empty() {
                outln!("no pending approval requests");
            }
            for r in &list {
                outln!("{}", r.line(now));
                if r.is_open() {
                    outln!("    task: {}", r.details.task);
                    outln!(
                        "    why:  {} [{}]",
                        r.details.reason,
                        r.details.rules.join(", ")
                    );
                    if let Some(read) = &r.details.read_as {
                        outln!("    read: {read}");
                    }
                    for (k, v) in &r.details.fields {
                        outln!("    field {k} = {v}");
                    }
                    for f in &r.details.findings {
                        outln!("    TAINT {f}");
                    }
                }
            }
            Ok(exit::OK)
        }
        ApprovalsCommand::Approve {
            id,
            reason,
            as_name,
        } => decide(&id, Decision::Approve, &reason, as_name.as_deref()),
        ApprovalsCommand::Deny {
            id,
            reason,
            as_name,
        } => decide(&id, Decision::Deny, &reason, as_name.as_deref()),
    }
}

fn runs(home: &Path, command: RunsCommand) -> anyhow::Result<u8> {
    let store = open_store(home)?;
    let review = open_review(home)?;
    let (run, who) = match &command {
        RunsCommand::Stop { run, as_name, .. } | RunsCommand::Release { run, as_name, .. } => {
            (resolve_run(&store, run)?, terminal(as_name.as_deref())?)
        }
    };
    match store.runs()?.into_iter().find(|r| r.run_id == run) {
        None => return Err(usage(format!("unknown run `{run}`"))),
        Some(r) if r.sealed => return Err(usage(format!("run `{run}` has already finished"))),
        Some(_) => {}
    }
    match command {
        RunsCommand::Stop { reason, .. } => {
            let s = review
                .request_stop(&run, &who, &reason)
                .map_err(review_error)?;
            outln!(
                "stop requested for {run} by {}: {}",
                s.requested_by,
                s.reason
            );
        }
        RunsCommand::Release { reason, .. } => {
            let r = review
                .request_release(&run, &who, &reason)
                .map_err(review_error)?;
            outln!("release requested for {run} by {}", r.requested_by);
        }
    }
    Ok(exit::OK)
}

fn replay(home: &Path, args: ReplayArgs) -> anyhow::Result<u8> {
    if !home.join("airlock.db").exists() {
        return Err(usage(format!(
            "no audit database at `{}`",
            home.join("airlock.db").display()
        )));
    }
    let store = open_store(home)?;
    let id = resolve_run(&store, &args.run)?;
    let html = airlock_server::render_replay(store.as_ref(), &id).map_err(|e| match e {
        airlock_server::ReplayError::UnknownRun(_) => usage(e.to_string()),
        other => anyhow!(other),
    })?;
    let out = args
        .output
        .unwrap_or_else(|| PathBuf::from(format!("airlock-replay-{id}.html")));
    std::fs::write(&out, html).with_context(|| format!("cannot write `{}`", out.display()))?;
    outln!("replay of {id} written to {}", out.display());
    Ok(exit::OK)
}

fn reviewers(home: &Path, command: ReviewersCommand) -> anyhow::Result<u8> {
    let review = open_review(home)?;
    match command {
        ReviewersCommand::Add { name, role } => {
            let password = read_password()?;
            review
                .add_reviewer(&name, role, &password)
                .map_err(review_error)?;
            outln!("reviewer `{name}` added with role {role}");
        }
        ReviewersCommand::List => {
            for r in review.reviewers()? {
                outln!("{:<24} {:<9} {} token(s)", r.name, r.role, r.tokens);
            }
        }
        ReviewersCommand::Remove { name } => {
            review.remove_reviewer(&name).map_err(review_error)?;
            outln!("reviewer `{name}` removed");
        }
        ReviewersCommand::Token { name, label } => {
            let (info, token) = review.issue_token(&name, &label).map_err(review_error)?;
            errln!(
                "token {} for `{name}` (shown once; only its hash is kept):",
                info.id
            );
            outln!("{token}");
        }
        ReviewersCommand::Revoke { id } => {
            if !review.revoke_token(&id)? {
                return Err(usage(format!("no token `{id}`")));
            }
            outln!("token `{id}` revoked");
        }
    }
    Ok(exit::OK)
}

/// `AIRLOCK_REVIEWER_PASSWORD`, else the first line of stdin (`read -rs` keeps it off screen).
fn read_password() -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal};
    if let Ok(p) = std::env::var("AIRLOCK_REVIEWER_PASSWORD") {
        return Ok(p);
    }
    if std::io::stdin().is_terminal() {
        err!("password (echoed; set AIRLOCK_REVIEWER_PASSWORD to avoid): ");
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        return Err(usage(
            "no password given (AIRLOCK_REVIEWER_PASSWORD or stdin)",
        ));
    }
    Ok(password)
}

fn open_store(home: &Path) -> anyhow::Result<Arc<SqliteStore>> {
    Ok(Arc::new(SqliteStore::open(home).with_context(|| {
        format!("cannot open the audit store in `{}`", home.display())
    })?))
}

/// Starts the bundled portal in-process on a free loopback port when `spec`'s manifest maps a
/// host to it, and points the run at it (hosts, system-of-record token, test-only password).
/// The returned handle keeps the portal alive.
async fn with_bundled_portal(
    spec: RunSpec,
) -> anyhow::Result<(RunSpec, Option<airlock_portal::PortalHandle>)> {
    if !spec.manifest.uses_bundled_portal() {
        return Ok((spec, None));
    }
    let handle = airlock_portal::start(
        "127.0.0.1:0".parse()?,
        airlock_portal::PortalConfig {
            spinner_ms: spec.manifest.portal.spinner_ms,
            faults: spec.manifest.portal.faults.clone(),
            ..Default::default()
        },
    )
    .await
    .context("cannot start the bundled portal")?;
    // The portal's test-only credentials stand in for CI_READONLY_PASSWORD when the variable is
    // unset; they are not a real secret.
    let spec = spec.with_bundled_portal(
        handle.addr,
        (
            airlock_portal::SOR_TOKEN_HEADER.to_string(),
            handle.sor_token.clone(),
        ),
        [(
            "CI_READONLY_PASSWORD".to_string(),
            airlock_portal::TEST_PASSWORD.to_string(),
        )],
    );
    Ok((spec, Some(handle)))
}

async fn run(home: &Path, args: RunArgs) -> anyhow::Result<u8> {
    let manifest = read_manifest(&args.task)?;
    let mut opts = airlock_providers::ProviderOptions {
        tool_version: args.tool_version.clone(),
        keep_screenshots: args.keep_screenshots,
        limits: airlock_providers::RunLimits {
            max_steps: Some(manifest.budgets.max_steps),
            max_denials: Some(manifest.budgets.max_denials),
            wall_clock_secs: Some(manifest.budgets.wall_clock_secs),
        },
        ..Default::default()
    };
    if let Some(p) = &args.prices {
        let text = std::fs::read_to_string(p)
            .map_err(|e| usage(format!("cannot read `{}`: {e}", p.display())))?;
        opts.prices =
            serde_json::from_str(&text).map_err(|e| usage(format!("`{}`: {e}", p.display())))?;
    }
    let provider =
        airlock_providers::from_spec(&args.model, opts).map_err(|e| usage(e.to_string()))?;
    // A transcript is checked whole before anything starts: a fault is the transcript's (exit 6).
    if let airlock_providers::AnyProvider::Scripted(p) = &provider {
        let secrets: Vec<&str> = manifest.secrets.keys().map(String::as_str).collect();
        if let Err(e) = p.check(airlock_core::coords::Viewport::default(), &secrets) {
            let file = args.model.split_once(':').map_or("", |(_, f)| f);
            errln!("airlock: transcript `{file}` cannot be replayed (nothing was started): {e}");
            return Ok(exit::MODEL);
        }
    }
    let recorder = args
        .record
        .as_ref()
        .map(airlock_providers::Recorder::create)
        .transpose()
        .map_err(|e| usage(e.to_string()))?;
    let mut provider = airlock_providers::Recording::new(provider, recorder);
    // The review queue carries web approvals and, for every mode, the Stop button.
    let review = match args.approvals {
        Approvals::Web => Some(open_review(home)?),
        _ => open_review(home)
            .map_err(|e| tracing::warn!("stop requests unavailable: {e:#}"))
            .ok(),
    };
    let mut approver = approver(args.approvals, review.as_ref(), args.approval_timeout)?;
    let policies = load_policies(&args.policies, args.allow_unattended_high_risk)?;
    let store = open_store(home)?;
    // Every invocation first cleans up after runs whose host died.
    report_recoveries(
        home,
        &airlock_engine::recover_orphans(store.as_ref(), &std::env::temp_dir()).await?,
    );

    let mut spec = RunSpec::new(manifest, args.model.clone());
    spec.sor_header = sor_header(&spec.manifest)?;
    // Hosts mapped to the bundled portal are served in-process on a free loopback port.
    let (spec, _portal) = with_bundled_portal(spec).await?;

    // SIGINT / SIGTERM stop the run between actions: it is frozen, verified, torn down, sealed.
    let stop = Arc::new(SignalStop::default());
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            else {
                return;
            };
            let which = tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
            if let Ok(mut s) = stop.0.lock() {
                *s = Some(format!("signal:{which}"));
            }
            errln!("airlock: {which} received; stopping the run after the current action");
        });
    }
    let mut reporter = Terminal {
        to_stderr: args.json,
    };
    let audit: Arc<dyn AuditStore> = store;
    let mut engine = Engine {
        audit,
        provider: &mut provider,
        approver: &mut approver,
        reporter: &mut reporter,
    };
    let report = engine
        .run(RunSpec {
            chromium: args.chromium,
            // Ctrl-C / SIGTERM, and the Stop button of `airlock serve` (or `airlock runs stop`).
            control: Some(match review {
                Some(r) => {
                    Arc::new(QueueControl::new(r).also(stop)) as Arc<dyn airlock_engine::RunControl>
                }
                None => stop,
            }),
            policies,
            interactive: interactive(),
            isolation: if args.insecure_no_sandbox {
                airlock_sandbox::Isolation::InsecureHost
            } else {
                airlock_sandbox::Isolation::Namespaces
            },
            ..spec
        })
        .await
        .map_err(|e| match e {
            airlock_engine::EngineError::Secret(_)
            | airlock_engine::EngineError::Policy(_)
            | airlock_engine::EngineError::Admission(_) => usage(e.to_string()),
            other => anyhow!(other),
        })?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        outln!("audit head: {}", report.audit_head);
    }
    Ok(exit_code(&report.outcome))
}

/// The documented exit code of a run's outcome.
fn exit_code(outcome: &Outcome) -> u8 {
    match outcome {
        Outcome::Succeeded => exit::OK,
        Outcome::NotVerified { .. } => exit::NOT_VERIFIED,
        Outcome::ApprovalDenied { .. } => exit::APPROVAL_DENIED,
        Outcome::BudgetExhausted { .. } => exit::BUDGET,
        Outcome::ProviderFailed { .. } => exit::MODEL,
        Outcome::SandboxFailed { .. } => exit::SANDBOX,
        Outcome::Stopped { .. } => exit::APPROVAL_DENIED,
    }
}

/// The approver for `--approvals`; `web` needs the review queue.
fn approver(
    mode: Approvals,
    review: Option<&Arc<ReviewStore>>,
    timeout_secs: u64,
) -> anyhow::Result<AnyApprover> {
    Ok(match (mode, review) {
        (Approvals::Prompt, _) => AnyApprover::Local(ApprovalMode::Prompt),
        (Approvals::Deny, _) => AnyApprover::Local(ApprovalMode::Deny),
        (Approvals::ApproveAll, _) => AnyApprover::Local(ApprovalMode::ApproveAll),
        (Approvals::Web, Some(review)) => AnyApprover::Web(
            WebApprover::new(Arc::clone(review), Duration::from_secs(timeout_secs))
                .with_notice(|q| {
                    errln!(
                        "step {}: waiting for approval {} (airlock serve, or `airlock approvals approve {}`)",
                        q.step, q.id, q.id
                    )
                }),
        ),
        (Approvals::Web, None) => return Err(anyhow!("the review queue is unavailable")),
    })
}

async fn eval(home: &Path, args: EvalArgs) -> anyhow::Result<u8> {
    use std::io::IsTerminal;
    // A suite that cannot be read or validated is the caller's to fix: nothing has run yet.
    let scenarios =
        airlock_eval::load_suite(&args.suite, &args.filter).map_err(|e| usage(e.to_string()))?;
    let suite = args
        .suite
        .file_name()
        .map_or_else(|| "suite".to_string(), |n| n.to_string_lossy().into_owned());
    let out = args.out.unwrap_or_else(|| home.join("eval").join(&suite));
    let homes = out.join("homes");
    let opts = airlock_eval::EvalOptions {
        jobs: args.jobs.max(1),
        chromium: args.chromium,
        // A line per finished scenario either way; the bar only on a terminal.
        progress: if std::io::stderr().is_terminal() {
            airlock_eval::ProgressStyle::Bar
        } else {
            airlock_eval::ProgressStyle::Lines
        },
        color: std::env::var_os("NO_COLOR").is_none(),
        homes: Some(homes.clone()),
    };
    let report = airlock_eval::run_suite(&suite, scenarios, &opts).await;
    out!("{}", report.table());
    let written = report.write(&out)?;
    outln!(
        "report: {}, {} and {} (JUnit)",
        written.json.display(),
        written.markdown.display(),
        written.junit.display()
    );
    outln!(
        "audit homes: {}/NAME, one per scenario (replay one: airlock --home {}/NAME replay latest -o NAME.html)",
        homes.display(),
        homes.display()
    );
    Ok(if report.failed() {
        exit::EVAL_FAILED
    } else {
        exit::OK
    })
}

/// Reads `--policy` files and checks them against the schema (a bad file is a usage error). A
/// rule that lets high-risk actions run without a human is refused unless it says why
/// (`@reason`) and the operator acknowledged it (`--allow-unattended-high-risk`).
fn load_policies(
    files: &[PathBuf],
    allow_unattended_high_risk: bool,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut policies = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| usage(format!("cannot read policy `{}`: {e}", f.display())))?;
        policies.push((f.display().to_string(), text));
    }
    let refs: Vec<(&str, &str)> = policies
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let engine = airlock_policy::cedar::PolicyEngine::with_operator(&refs)
        .map_err(|e| usage(e.to_string()))?;
    if let Some(r) = engine
        .unattended_high_risk()
        .iter()
        .find(|r| r.reason.is_empty())
    {
        return Err(usage(format!(
            "{r} lets high-risk actions run without a human and gives no reason: add \
             @reason(\"...\") to it (and pass --allow-unattended-high-risk), or require \
             `context.tier != \"high\"`"
        )));
    }
    if let Some(r) = engine.unattended_high_risk().first() {
        if !allow_unattended_high_risk {
            return Err(usage(format!(
                "{r} lets high-risk actions run without a human ({}); pass \
                 --allow-unattended-high-risk to accept that (the audit records it)",
                r.reason
            )));
        }
    }
    Ok(policies)
}

/// The verifier's system-of-record header, its value from the manifest's `header_env`.
fn sor_header(m: &TaskManifest) -> anyhow::Result<Option<(String, String)>> {
    Ok(match (&m.verifier.header_name, &m.verifier.header_env) {
        (Some(name), Some(var)) => Some((
            name.clone(),
            std::env::var(var).map_err(|_| {
                usage(format!(
                    "verifier.header_env: environment variable `{var}` is not set"
                ))
            })?,
        )),
        _ => None,
    })
}

/// Reads a manifest and admits it (refusals are usage errors, before anything starts).
fn read_manifest(path: &Path) -> anyhow::Result<TaskManifest> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("cannot read `{}`: {e}", path.display())))?;
    let manifest =
        TaskManifest::from_toml(&text).map_err(|e| usage(format!("`{}`: {e}", path.display())))?;
    if let Err(e) = airlock_policy::admit(&manifest) {
        return Err(usage(format!("`{}`: {e}", path.display())));
    }
    Ok(manifest)
}

/// Resolves on SIGINT or SIGTERM.
async fn interrupted() {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// `airlock mcp`: one run per MCP session, on stdio or streamable HTTP.
async fn mcp(home: &Path, args: McpArgs) -> anyhow::Result<u8> {
    let manifest = read_manifest(&args.task)?;
    if matches!(args.approvals, Approvals::Prompt) && args.http.is_none() {
        return Err(usage(
            "--approvals prompt cannot ask on the terminal while stdin carries the MCP protocol; \
             use web (the default), deny or approve-all, or serve with --http",
        ));
    }
    let review = match args.approvals {
        Approvals::Web => Some(open_review(home)?),
        _ => open_review(home)
            .map_err(|e| tracing::warn!("stop requests unavailable: {e:#}"))
            .ok(),
    };
    approver(args.approvals, review.as_ref(), args.approval_timeout)?;
    let policies = load_policies(&args.policies, false)?;
    let store = open_store(home)?;
    report_recoveries(
        home,
        &airlock_engine::recover_orphans(store.as_ref(), &std::env::temp_dir()).await?,
    );
    let token = match &args.http {
        None => None,
        Some(_) => Some(match std::env::var("AIRLOCK_MCP_TOKEN") {
            Ok(t) => airlock_mcp::BearerToken::given(&t).map_err(|e| usage(e.to_string()))?,
            Err(_) => {
                let t = airlock_mcp::BearerToken::generate()?;
                errln!(
                    "airlock mcp: bearer token (set AIRLOCK_MCP_TOKEN to choose one): {}",
                    t.as_str()
                );
                t
            }
        }),
    };
    let mut spec = RunSpec::new(manifest, "mcp");
    spec.sor_header = sor_header(&spec.manifest)?;
    let (spec, _portal) = with_bundled_portal(spec).await?;
    let spec = RunSpec {
        chromium: args.chromium,
        // The Stop button of `airlock serve` (or `airlock runs stop`); signals end the session.
        control: review
            .clone()
            .map(|r| Arc::new(QueueControl::new(r)) as Arc<dyn airlock_engine::RunControl>),
        policies,
        isolation: if args.insecure_no_sandbox {
            airlock_sandbox::Isolation::InsecureHost
        } else {
            airlock_sandbox::Isolation::Namespaces
        },
        ..spec
    };
    let (mode, timeout) = (args.approvals, args.approval_timeout);
    let launcher = Arc::new(airlock_mcp::Launcher::new(store, spec, move || {
        approver(mode, review.as_ref(), timeout).unwrap_or(AnyApprover::Local(ApprovalMode::Deny))
    }));
    match (args.http, token) {
        (Some(addr), Some(token)) => {
            airlock_mcp::http::serve(
                launcher,
                addr,
                token,
                args.max_sessions,
                |at| {
                    errln!(
                        "airlock mcp: streamable HTTP on http://{at}{}",
                        airlock_mcp::http::PATH
                    )
                },
                interrupted(),
            )
            .await
            .map_err(|e| match e {
                airlock_mcp::McpError::NotLoopback(_) => usage(e.to_string()),
                other => anyhow!(other),
            })?;
            Ok(exit::OK)
        }
        _ => {
            let end = airlock_mcp::serve_stdio(&launcher, interrupted()).await;
            match end.as_ref() {
                Ok(report) => {
                    errln!(
                        "airlock mcp: run {}: {}",
                        report.run_id,
                        report.outcome.summary()
                    );
                    Ok(exit_code(&report.outcome))
                }
                Err(
                    e @ (airlock_engine::EngineError::Secret(_)
                    | airlock_engine::EngineError::Policy(_)
                    | airlock_engine::EngineError::Admission(_)),
                ) => Err(usage(e.to_string())),
                Err(e) => Err(anyhow!("{e}")),
            }
        }
    }
}

fn resolve_run(store: &SqliteStore, run: &str) -> anyhow::Result<String> {
    if run == "latest" {
        return store
            .latest_run()?
            .ok_or_else(|| usage("there are no runs in this home"));
    }
    Ok(run.to_string())
}

/// What `audit verify` says about one run, and its exit code: ok (0), unsealed (10), or
/// broken, including a head other than the expected one (8).
fn verify_lines(
    id: &str,
    report: &airlock_audit::VerifyReport,
    expect_head: Option<&str>,
) -> (Vec<String>, u8) {
    use airlock_audit::ChainState;
    let (mut lines, mut code) = match report.state() {
        ChainState::Sealed => (
            vec![format!(
                "{id}: ok ({} events, sealed, head {})",
                report.events, report.head_hash
            )],
            exit::OK,
        ),
        ChainState::Unsealed => (
            vec![format!(
                "{id}: unsealed (chain intact up to {} events, head {}; run still going or its \
                 host died: run `airlock recover`)",
                report.events, report.head_hash
            )],
            exit::AUDIT_UNSEALED,
        ),
        ChainState::Broken => {
            let mut lines = vec![format!("{id}: BROKEN")];
            lines.extend(report.problems.iter().map(|p| format!("  - {p}")));
            (lines, exit::AUDIT_BROKEN)
        }
    };
    match expect_head {
        Some(want) if report.head_is(want) => {
            lines.push(format!("  head is the expected {}", want.trim()));
        }
        Some(want) => {
            lines.push(format!(
                "{id}: HEAD DIFFERS: expected {}, but the chain ends at {} (event {}): this is \
                 not the log that head was taken from (rewritten, truncated or extended since)",
                want.trim(),
                if report.head_hash.is_empty() {
                    "nothing"
                } else {
                    report.head_hash.as_str()
                },
                report.head_seq
            ));
            code = exit::AUDIT_BROKEN;
        }
        None => {}
    }
    (lines, code)
}

fn audit(home: &Path, command: AuditCommand) -> anyhow::Result<u8> {
    if !home.join("airlock.db").exists() {
        bail!(Usage(format!(
            "no audit database at `{}`",
            home.join("airlock.db").display()
        )));
    }
    let store = open_store(home)?;
    match command {
        AuditCommand::Verify { run, expect_head } => {
            let runs = match run {
                Some(r) => vec![resolve_run(&store, &r)?],
                None => store.runs()?.into_iter().map(|r| r.run_id).collect(),
            };
            if runs.is_empty() {
                outln!("no runs to verify");
                return Ok(exit::OK);
            }
            let mut code = exit::OK;
            for id in runs {
                let (lines, c) = verify_lines(&id, &store.verify(&id)?, expect_head.as_deref());
                for l in lines {
                    outln!("{l}");
                }
                // A broken chain outweighs an unsealed one, which outweighs ok.
                code = match (code, c) {
                    (exit::AUDIT_BROKEN, _) | (_, exit::AUDIT_BROKEN) => exit::AUDIT_BROKEN,
                    (exit::AUDIT_UNSEALED, _) | (_, exit::AUDIT_UNSEALED) => exit::AUDIT_UNSEALED,
                    _ => exit::OK,
                };
            }
            Ok(code)
        }
        AuditCommand::List => {
            for r in store.runs()? {
                let outcome = r
                    .outcome
                    .as_ref()
                    .and_then(|o| o.get("result"))
                    .and_then(|o| o.get("outcome"))
                    .and_then(|o| o.as_str())
                    .unwrap_or("-")
                    .to_string();
                let task = r.task.get("task").and_then(|t| t.as_str()).unwrap_or("-");
                outln!("{}  {:<10} {:<18} {}", r.run_id, r.status, outcome, task);
            }
            Ok(exit::OK)
        }
        AuditCommand::Show { run } => {
            let id = resolve_run(&store, &run)?;
            for e in store.events(&id)? {
                outln!("{}", serde_json::to_string(&e)?);
            }
            Ok(exit::OK)
        }
    }
}

async fn portal(args: PortalArgs) -> anyhow::Result<u8> {
    if !args.listen.ip().is_loopback() {
        return Err(usage("the portal only listens on loopback addresses"));
    }
    let handle = airlock_portal::start(
        args.listen,
        airlock_portal::PortalConfig {
            spinner_ms: args.spinner_ms,
            ..Default::default()
        },
    )
    .await
    .context("cannot start the portal")?;
    outln!("portal listening on http://{}", handle.addr);
    outln!(
        "hosts: ci.example, incidents.example (send them as the Host header, or use this address as an HTTP proxy)"
    );
    outln!(
        "system-of-record token ({}): {}",
        airlock_portal::SOR_TOKEN_HEADER,
        handle.sor_token
    );
    tokio::signal::ctrl_c().await?;
    handle.shutdown();
    Ok(exit::OK)
}

fn policy(home: &Path, command: PolicyCommand) -> anyhow::Result<u8> {
    use airlock_policy::cedar::{PolicyEngine, DEFAULT_POLICIES, SCHEMA};
    match command {
        PolicyCommand::Defaults { schema } => {
            out!("{}", if schema { SCHEMA } else { DEFAULT_POLICIES });
            Ok(exit::OK)
        }
        PolicyCommand::Check { file } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| usage(format!("cannot read `{}`: {e}", file.display())))?;
            let name = file.display().to_string();
            match PolicyEngine::with_operator(&[(name.as_str(), text.as_str())]) {
                Ok(engine) => {
                    let ours: Vec<_> = engine
                        .rules()
                        .values()
                        .filter(|r| r.source == name)
                        .collect();
                    outln!("{name}: ok, {} policies", ours.len());
                    for r in ours {
                        outln!("  {} ({}): {}", r.id, r.effect, r.reason);
                    }
                    let repeated = engine.repeated_defaults().len();
                    if repeated > 0 {
                        outln!(
                            "note: {repeated} policies repeat Airlock's built-in defaults word for word; \
                             the defaults always apply, and an operator file adds to them"
                        );
                    }
                    for r in engine.unattended_high_risk() {
                        errln!(
                            "warning: {r} lets high-risk actions (submit, destructive) run without \
                             a human: it permits `unattended` without requiring \
                             `context.tier != \"high\"`{}; `airlock run` refuses it unless the \
                             rule has an @reason and --allow-unattended-high-risk is given",
                            if r.reason.is_empty() {
                                " and has no @reason".to_string()
                            } else {
                                format!(" (reason: {})", r.reason)
                            }
                        );
                    }
                    Ok(exit::OK)
                }
                Err(e) => {
                    errln!("{e}");
                    Ok(exit::USAGE)
                }
            }
        }
        PolicyCommand::Explain { task, run, step } => {
            let text = std::fs::read_to_string(&task)
                .map_err(|e| usage(format!("cannot read `{}`: {e}", task.display())))?;
            let manifest = TaskManifest::from_toml(&text)
                .map_err(|e| usage(format!("`{}`: {e}", task.display())))?;
            let store = open_store(home)?;
            let id = resolve_run(&store, &run)?;
            let events = store.events(&id)?;
            let started = events
                .first()
                .map(|e| e.payload.clone())
                .unwrap_or_default();
            if started.get("task").and_then(|t| t.as_str()) != Some(manifest.task.name.as_str()) {
                errln!(
                    "note: run {id} was not made from task `{}`",
                    manifest.task.name
                );
            }
            // The operator policies the run used are in its audit; rebuild the same set.
            let files: Vec<(String, String)> = started
                .get("operator_policies")
                .and_then(|p| p.as_array())
                .map(|ps| {
                    ps.iter()
                        .filter_map(|p| {
                            Some((
                                p.get("name")?.as_str()?.to_string(),
                                p.get("text")?.as_str()?.to_string(),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let refs: Vec<(&str, &str)> = files
                .iter()
                .map(|(n, t)| (n.as_str(), t.as_str()))
                .collect();
            let engine = PolicyEngine::with_operator(&refs)?;
            let decisions: Vec<_> = events
                .iter()
                .filter(|e| {
                    e.kind == "decision"
                        && e.payload.get("step").and_then(|s| s.as_u64()) == Some(u64::from(step))
                })
                .collect();
            if decisions.is_empty() {
                return Err(usage(format!("run {id} has no decision at step {step}")));
            }
            for e in decisions {
                let p = &e.payload;
                let d = &p["decision"];
                outln!(
                    "step {step} (event {}): {}",
                    e.seq,
                    p["summary"].as_str().unwrap_or("?")
                );
                outln!(
                    "  verdict: {} ({} risk, effect {})",
                    d["verdict"].as_str().unwrap_or("?"),
                    d["tier"].as_str().unwrap_or("?"),
                    d["effect"].as_str().unwrap_or("?")
                );
                outln!("  reason:  {}", d["reason"].as_str().unwrap_or(""));
                for rule in d["rules"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.as_str())
                {
                    match engine.rules().get(rule) {
                        Some(r) => {
                            outln!("  rule {rule} ({}, {}): {}", r.effect, r.source, r.reason);
                            for line in r.text.lines() {
                                outln!("      {line}");
                            }
                        }
                        None => outln!("  rule {rule} (built-in classifier)"),
                    }
                }
            }
            Ok(exit::OK)
        }
    }
}

/// Reports what crash recovery did, and cancels approval requests the dead runs left pending
/// in the review queue (nobody waits for them any more).
fn report_recoveries(home: &Path, rs: &[airlock_engine::Recovery]) {
    let review = if rs.is_empty() || !home.join("review.db").exists() {
        None
    } else {
        open_review(home)
            .map_err(|e| tracing::warn!("pending approvals not cancelled: {e:#}"))
            .ok()
    };
    for r in rs {
        errln!(
            "recovered {}: aborted (host crashed at step {}); {} processes killed, profile {}",
            r.run_id,
            r.last_step,
            r.teardown.processes_killed.len(),
            if r.teardown.run_dir_removed {
                "deleted"
            } else {
                "NOT deleted"
            }
        );
        for u in &r.outcome_unknown {
            errln!("  {u}");
        }
        if let Some(review) = &review {
            match review.cancel_orphaned(&r.run_id) {
                Ok(ids) => {
                    for id in ids {
                        errln!("  approval request {id} cancelled (the run was aborted)");
                    }
                }
                Err(e) => tracing::warn!("pending approvals of {} not cancelled: {e}", r.run_id),
            }
        }
    }
}

async fn recover(home: &Path) -> anyhow::Result<u8> {
    if !home.join("airlock.db").exists() {
        outln!("no runs to recover");
        return Ok(exit::OK);
    }
    let store = open_store(home)?;
    let rs = airlock_engine::recover_orphans(store.as_ref(), &std::env::temp_dir()).await?;
    if rs.is_empty() {
        outln!("no orphaned runs");
    }
    report_recoveries(home, &rs);
    for r in &rs {
        outln!(
            "{}: aborted: host crashed at step {}",
            r.run_id,
            r.last_step
        );
    }
    Ok(exit::OK)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every argument of `cmd` and its subcommands without help text, as `airlock sub --arg`.
    fn undocumented(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        if cmd.get_about().is_none() && cmd.get_long_about().is_none() {
            missing.push(format!("{path} (the command itself)"));
        }
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("{path} {id}"));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            undocumented(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }

    #[test]
    fn every_subcommand_and_argument_has_help_text() {
        let mut cli = Cli::command();
        cli.build();
        let mut missing = Vec::new();
        undocumented(&cli, "airlock", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
        Cli::command().debug_assert();
    }

    /// A home with one run of three events, sealed or not; returns the run's head hash.
    fn home_with_run(home: &Path, sealed: bool) -> String {
        let store = SqliteStore::open(home).unwrap();
        store
            .begin_run("r1", &serde_json::json!({"task": "t"}))
            .unwrap();
        let last = store
            .append("r1", "proposal", &serde_json::json!({}), &[])
            .unwrap();
        if sealed {
            return store
                .seal("r1", &serde_json::json!({"outcome": "succeeded"}))
                .unwrap()
                .hash;
        }
        last.hash
    }

    fn verify(home: &Path, run: Option<&str>, expect_head: Option<&str>) -> u8 {
        audit(
            home,
            AuditCommand::Verify {
                run: run.map(str::to_string),
                expect_head: expect_head.map(str::to_string),
            },
        )
        .unwrap()
    }

    #[test]
    fn an_unsealed_run_is_reported_as_unsealed_with_its_own_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let head = home_with_run(dir.path(), false);
        assert_eq!(verify(dir.path(), Some("r1"), None), exit::AUDIT_UNSEALED);
        assert_eq!(verify(dir.path(), None, None), exit::AUDIT_UNSEALED);
        let store = SqliteStore::open(dir.path()).unwrap();
        let (lines, code) = verify_lines("r1", &store.verify("r1").unwrap(), None);
        assert_eq!(code, exit::AUDIT_UNSEALED);
        assert_eq!(
            lines,
            [format!(
                "r1: unsealed (chain intact up to 2 events, head {head}; run still going or \
                 its host died: run `airlock recover`)"
            )]
        );
        // A broken run next to it outweighs it.
        store
            .begin_run("r2", &serde_json::json!({"task": "t"}))
            .unwrap();
        store.seal("r2", &serde_json::json!({})).unwrap();
        let db = rusqlite::Connection::open(dir.path().join("airlock.db")).unwrap();
        db.execute_batch(
            "DROP TRIGGER IF EXISTS events_no_delete; DELETE FROM events WHERE run_id = 'r2' AND seq = 1;",
        )
        .unwrap();
        assert_eq!(verify(dir.path(), None, None), exit::AUDIT_BROKEN);
    }

    #[test]
    fn expect_head_fails_a_run_whose_head_differs_and_passes_the_right_one() {
        let dir = tempfile::tempdir().unwrap();
        let head = home_with_run(dir.path(), true);
        assert_eq!(verify(dir.path(), Some("r1"), None), exit::OK);
        assert_eq!(verify(dir.path(), Some("latest"), Some(&head)), exit::OK);
        let wrong = "0".repeat(64);
        assert_eq!(
            verify(dir.path(), Some("r1"), Some(&wrong)),
            exit::AUDIT_BROKEN
        );
        let store = SqliteStore::open(dir.path()).unwrap();
        let report = store.verify("r1").unwrap();
        let (lines, _) = verify_lines("r1", &report, Some(&wrong));
        assert_eq!(
            lines.last().unwrap(),
            &format!(
                "r1: HEAD DIFFERS: expected {wrong}, but the chain ends at {head} (event 3): \
                 this is not the log that head was taken from (rewritten, truncated or \
                 extended since)"
            )
        );
        let (lines, code) = verify_lines("r1", &report, Some(&head.to_uppercase()));
        assert_eq!(code, exit::OK);
        assert!(lines[0].starts_with("r1: ok (3 events, sealed, head "));

        // Only with one RUN.
        let e = Cli::try_parse_from(["airlock", "audit", "verify", "--expect-head", &head]);
        assert!(e.is_err());
        assert!(
            Cli::try_parse_from(["airlock", "audit", "verify", "r1", "--expect-head", &head])
                .is_ok()
        );
    }
}

#[cfg(test)]
mod error_text_tests {
    use super::error_text;

    #[test]
    fn an_os_error_is_printed_once() {
        // What `airlock serve` on a busy port used to print twice.
        let os = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let outer = std::io::Error::other(format!("cannot listen on `127.0.0.1:1`: {os}"));
        let e = anyhow::Error::new(outer).context("cannot listen on `127.0.0.1:1`");
        let t = error_text(&e);
        assert_eq!(t.matches(&os.to_string()).count(), 1, "{t}");
        let chained = anyhow::anyhow!("inner cause").context("outer");
        assert_eq!(error_text(&chained), "outer: inner cause");
    }
}
