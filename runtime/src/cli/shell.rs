//! `kustodian shell`: an interactive loop over one session, with rustyline on a terminal and
//! plain line reading otherwise (`printf 'print 1\n\n' | kustodian shell`).

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;

use kustodian_runtime::Identity;
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use super::report::Failure;
use kustodian_runtime::script::{ScriptRequest, ends_inside_multiline_string};
use super::{Format, Printer, Session, output_failure};

const HELP: &str = "\
Type a query or a management command. A request may span several lines:
  - an empty line submits it (as in Kusto Explorer; not inside a ``` string),
  - or end its last line with ;; to submit it at once, e.g.  print 1;;
Ctrl-C discards the request being typed; Ctrl-D (end of input) submits it and leaves.

Shell commands (on a line of their own, when no request is being typed):
  help, .help          this text
  quit, exit           leave the shell
  #db NAME             run requests in database NAME
  #as PRINCIPAL        run as PRINCIPAL (FQN, e.g. aaduser=alice@contoso.com); #as alone: the cluster admin
  #group GROUP         add a group claim to the principal; #group alone clears them
  #set NAME[=VALUE]    set a request property (NAME alone means true); #set alone clears them
  #format table|json|csv   how results are printed
  #timing              toggle printing each request's elapsed time
History is kept in ~/.kustodian_history.
";

enum Line {
    Text(String),
    Interrupted,
    End,
}

/// Where lines come from: rustyline on a terminal, plain stdin otherwise.
enum Input {
    Editor(Box<DefaultEditor>),
    Plain(io::StdinLock<'static>),
}

impl Input {
    fn open() -> Input {
        if io::stdin().is_terminal()
            && let Ok(mut editor) = DefaultEditor::new()
        {
            if let Some(path) = history_path() {
                // A missing or unreadable history file is not an error.
                let _ = editor.load_history(&path);
            }
            return Input::Editor(Box::new(editor));
        }
        Input::Plain(io::stdin().lock())
    }

    fn read(&mut self, prompt: &str) -> Line {
        match self {
            Input::Editor(editor) => match editor.readline(prompt) {
                Ok(line) => {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                    }
                    Line::Text(line)
                }
                Err(ReadlineError::Interrupted) => Line::Interrupted,
                Err(_) => Line::End,
            },
            Input::Plain(stdin) => {
                let mut line = String::new();
                match stdin.read_line(&mut line) {
                    Ok(0) | Err(_) => Line::End,
                    Ok(_) => Line::Text(line.trim_end_matches(['\n', '\r']).to_string()),
                }
            }
        }
    }

    fn close(self) {
        if let Input::Editor(mut editor) = self
            && let Some(path) = history_path()
        {
            let _ = editor.save_history(&path);
        }
    }
}

fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".kustodian_history"))
}

/// What a line typed with no request pending asks for.
#[derive(Debug, PartialEq, Eq)]
enum Meta {
    Help,
    Quit,
    Database(String),
    As(Option<String>),
    Group(Option<String>),
    Set(Option<(String, String)>),
    Format(Option<Format>),
    Timing,
    Unknown(String),
}

fn meta_command(line: &str) -> Option<Meta> {
    let line = line.trim();
    match line {
        "help" | ".help" | "?" => return Some(Meta::Help),
        "quit" | "exit" | ".quit" | ".exit" => return Some(Meta::Quit),
        _ => {}
    }
    let rest = line.strip_prefix('#')?;
    let (command, arg) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let arg = arg.trim();
    let some_arg = (!arg.is_empty()).then(|| arg.to_string());
    Some(match command {
        "db" if !arg.is_empty() => Meta::Database(arg.to_string()),
        "as" => Meta::As(some_arg),
        "group" => Meta::Group(some_arg),
        "set" if arg.is_empty() => Meta::Set(None),
        "set" => match super::parse_property(arg) {
            Ok(property) => Meta::Set(Some(property)),
            Err(_) => Meta::Unknown(line.to_string()),
        },
        "format" => Meta::Format(match arg {
            "table" => Some(Format::Table),
            "json" => Some(Format::Json),
            "csv" => Some(Format::Csv),
            _ => None,
        }),
        "timing" => Meta::Timing,
        _ => Meta::Unknown(line.to_string()),
    })
}

impl Session {
    fn prompt(&self) -> String {
        let db = self.options.database.as_deref().unwrap_or("(no database)");
        let who = self
            .options
            .identity
            .as_ref()
            .map_or("admin", |i| i.principal.as_str());
        format!("{db} [{who}]> ")
    }

    /// Applies a meta-command; returns a message for the user (stderr), except `help` (stdout).
    fn apply(&mut self, meta: Meta, printer: &mut Printer) -> Option<String> {
        match meta {
            Meta::Help => {
                print!("{HELP}");
                None
            }
            Meta::Quit => None,
            Meta::Database(name) => {
                self.options.database = Some(name);
                None
            }
            Meta::As(principal) => {
                self.options.identity = principal.map(|principal| Identity {
                    principal,
                    groups: Vec::new(),
                    ..Default::default()
                });
                None
            }
            Meta::Group(group) => match (&mut self.options.identity, group) {
                (None, Some(_)) => {
                    Some("#group needs a principal: use #as PRINCIPAL first\n".into())
                }
                (None, None) => None,
                (Some(identity), Some(group)) => {
                    identity.groups.push(group);
                    None
                }
                (Some(identity), None) => {
                    identity.groups.clear();
                    None
                }
            },
            Meta::Set(Some((name, value))) => {
                self.options.properties.retain(|(n, _)| *n != name);
                self.options.properties.push((name, value));
                None
            }
            Meta::Set(None) => {
                self.options.properties.clear();
                None
            }
            Meta::Format(Some(format)) => {
                printer.format = format;
                None
            }
            Meta::Format(None) => Some("#format takes table, json or csv\n".into()),
            Meta::Timing => {
                printer.timing = !printer.timing;
                Some(format!(
                    "timing {}\n",
                    if printer.timing { "on" } else { "off" }
                ))
            }
            Meta::Unknown(line) => Some(format!("unknown shell command: {line} (type help)\n")),
        }
    }
}

/// Runs the shell until `quit` or end of input. Request failures are shown and the loop goes
/// on; the exit status is success unless output could not be written.
pub fn shell(mut session: Session) -> Result<bool, Failure> {
    let mut input = Input::open();
    let interactive = matches!(input, Input::Editor(_));
    let mut printer = Printer::new(Format::Table, false);
    let mut buffer: Vec<String> = Vec::new();
    if interactive {
        println!("kustodian shell: type help for help, quit to leave");
    }
    loop {
        let prompt = if buffer.is_empty() {
            session.prompt()
        } else {
            "... ".to_string()
        };
        let line = match input.read(&prompt) {
            Line::Text(line) => line,
            Line::Interrupted => {
                buffer.clear();
                continue;
            }
            Line::End => break,
        };
        if buffer.is_empty() {
            if line.trim().is_empty() {
                continue;
            }
            if let Some(meta) = meta_command(&line) {
                if meta == Meta::Quit {
                    break;
                }
                if let Some(message) = session.apply(meta, &mut printer) {
                    eprint!("{message}");
                }
                continue;
            }
        }
        let submit_now = line.trim_end().ends_with(";;");
        let blank = line.trim().is_empty();
        if submit_now {
            let trimmed = line.trim_end();
            buffer.push(trimmed[..trimmed.len() - 2].to_string());
        } else if !blank {
            buffer.push(line);
        }
        let text = buffer.join("\n");
        if submit_now || (blank && !ends_inside_multiline_string(&text)) {
            submit(&session, &mut printer, &text)?;
            buffer.clear();
        } else if blank {
            buffer.push(String::new());
        }
    }
    let text = buffer.join("\n");
    if !text.trim().is_empty() {
        submit(&session, &mut printer, &text)?;
    }
    input.close();
    Ok(true)
}

fn submit(session: &Session, printer: &mut Printer, text: &str) -> Result<(), Failure> {
    if text.trim().is_empty() {
        return Ok(());
    }
    let request = ScriptRequest {
        text: text.to_string(),
        offset: 0,
        line: 1,
    };
    let (result, elapsed) = session.execute(text, &request);
    printer.print(&result, elapsed).map_err(output_failure)?;
    io::stdout().flush().map_err(output_failure)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn meta_commands() {
        assert_eq!(meta_command("help"), Some(Meta::Help));
        assert_eq!(meta_command(" .help "), Some(Meta::Help));
        assert_eq!(meta_command("exit"), Some(Meta::Quit));
        assert_eq!(
            meta_command("#db Sales"),
            Some(Meta::Database("Sales".into()))
        );
        assert_eq!(
            meta_command("#as aaduser=bob@contoso.com"),
            Some(Meta::As(Some("aaduser=bob@contoso.com".into())))
        );
        assert_eq!(meta_command("#as"), Some(Meta::As(None)));
        assert_eq!(
            meta_command("#group  g1 "),
            Some(Meta::Group(Some("g1".into())))
        );
        assert_eq!(
            meta_command("#set x"),
            Some(Meta::Set(Some(("x".into(), "true".into()))))
        );
        assert_eq!(
            meta_command("#format csv"),
            Some(Meta::Format(Some(Format::Csv)))
        );
        assert_eq!(meta_command("#timing"), Some(Meta::Timing));
        assert_eq!(meta_command("#db"), Some(Meta::Unknown("#db".into())));
        assert_eq!(meta_command("print 1"), None);
        assert_eq!(meta_command(".show tables"), None);
    }
}
