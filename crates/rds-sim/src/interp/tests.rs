//! Interpreter tests with a scripted runner in place of the engine, one per
//! scripting form.

use super::*;
use crate::menu::Verb;
use crate::parser::parse_script;

/// Answers `find` with a fixed list, `get` with a fixed value, records
/// every invocation, and fails or drops on request.
#[derive(Default)]
struct Fake {
    found: Vec<Value>,
    got: Value,
    calls: Vec<Invocation>,
    fail: Option<CmdError>,
    drop: bool,
}

impl CommandRunner for Fake {
    fn run(&mut self, inv: &Invocation) -> Result<Outcome, Flow> {
        self.calls.push(inv.clone());
        if self.drop {
            return Err(Flow::Drop);
        }
        if let Some(e) = &self.fail {
            return Err(Flow::Error(e.clone()));
        }
        let value = match inv.verb {
            Verb::Find => Value::List(self.found.clone()),
            Verb::Get => self.got.clone(),
            Verb::Add => Value::Id(9),
            _ => Value::Nothing,
        };
        Ok(Outcome {
            value,
            lines: vec![format!("ran {}", inv.verb.name())],
        })
    }
}

fn run_with(fake: &mut Fake, script: &str) -> Finished {
    let block = parse_script(script).unwrap_or_else(|e| panic!("{script}: {e}"));
    Interp::new(fake).run(&block)
}

/// Runs a script without menu commands and returns its printed lines.
fn put(script: &str) -> Vec<String> {
    let finished = run_with(&mut Fake::default(), script);
    assert!(!finished.failed, "{script}: {:?}", finished.lines);
    finished.lines
}

fn fails(script: &str) -> String {
    let finished = run_with(&mut Fake::default(), script);
    assert!(finished.failed, "{script}");
    finished.lines.last().cloned().unwrap_or_default()
}

#[test]
fn local_set_and_put() {
    assert_eq!(put(r#":local a "x"; :set a ($a . "y"); :put $a"#), ["xy"]);
    assert_eq!(put(":local a; :put [:typeof $a]"), ["nothing"]);
    assert_eq!(put(":put"), [""]);
    assert_eq!(put(r#":local n 5; :put "n=$n!""#), ["n=5!"]);
}

#[test]
fn scopes_and_globals() {
    assert_eq!(
        put(":local a 1; :if (true) do={:local a 2; :put $a}; :put $a"),
        ["2", "1"]
    );
    assert_eq!(put(":local a 1; :if (true) do={:set a 2}; :put $a"), ["2"]);
    assert_eq!(put("{:global g 7}; :put $g"), ["7"]);
    assert_eq!(
        fails("{:local l 7}; :put $l"),
        "failure: undefined variable l"
    );
    assert_eq!(fails(":set nope 1"), "failure: undefined variable nope");
}

#[test]
fn if_else_and_conditions() {
    assert_eq!(put(":if (1 < 2) do={:put yes} else={:put no}"), ["yes"]);
    assert_eq!(put(":if (1 > 2) do={:put yes} else={:put no}"), ["no"]);
    assert_eq!(put(":if (1 > 2) do={:put yes}"), Vec::<String>::new());
    assert_eq!(
        put(r#":if ("a" = "a" and !(1 = 2) || false) do={:put ok}"#),
        ["ok"]
    );
    assert_eq!(put(r#":if ("abc" ~ "^ab") do={:put ok}"#), ["ok"]);
    assert_eq!(fails(":if (1) do={:put x}"), "conditional not boolean");
}

#[test]
fn do_on_error_catches_errors_but_not_drops() {
    assert_eq!(
        put(r#":do {:put a; :error "boom"; :put b} on-error={:put caught}"#),
        ["a", "caught"]
    );
    assert_eq!(fails(r#":do {:error "boom"}"#), "boom");
    assert_eq!(fails(r#":error ("a" . "b")"#), "ab");
    let mut fake = Fake {
        fail: Some(CmdError::NoSuchItem),
        ..Fake::default()
    };
    let finished = run_with(
        &mut fake,
        r#":do {/disk remove x} on-error={:put "handled"}"#,
    );
    assert_eq!(finished.lines, ["handled"]);
    assert!(!finished.failed);
    let mut fake = Fake {
        drop: true,
        ..Fake::default()
    };
    let finished = run_with(
        &mut fake,
        r#":do {/disk remove x} on-error={:put "handled"}; :put after"#,
    );
    assert!(finished.dropped && !finished.failed);
    assert!(finished.lines.is_empty());
}

#[test]
fn uncaught_errors_stop_the_script() {
    let mut fake = Fake {
        fail: Some(CmdError::AlreadyExists),
        ..Fake::default()
    };
    let finished = run_with(&mut fake, ":put before; /disk add slot=a; :put after");
    assert_eq!(
        finished.lines,
        ["before", "failure: already have such entry"]
    );
    assert!(finished.failed);
}

#[test]
fn len_pick_tostr_tonum_typeof() {
    assert_eq!(put(r#":put [:len "abcd"]"#), ["4"]);
    assert_eq!(
        put(r#":local p "/raid10/x.img"; :put [:pick $p 1 [:len $p]]"#),
        ["raid10/x.img"]
    );
    assert_eq!(put(r#":put [:pick "abc" 1]"#), ["b"]);
    assert_eq!(put(":put ([:tostr 5] = \"5\")"), ["true"]);
    assert_eq!(put(":put ([:tonum \"5\"] = 5)"), ["true"]);
    assert_eq!(put(":put [:typeof [:tonum \"x\"]]"), ["nothing"]);
    assert_eq!(put(":put [:typeof *1]"), ["id"]);
}

#[test]
fn foreach_walks_lists() {
    let mut fake = Fake {
        found: vec![Value::Id(1), Value::Id(0x1f)],
        ..Fake::default()
    };
    let finished = run_with(
        &mut fake,
        ":foreach i in=[/disk find] do={:put $i}; :put [:len [/disk find]]",
    );
    assert_eq!(finished.lines, ["ran find", "*1", "*1F", "ran find", "2"]);
    assert_eq!(put(":foreach i in=5 do={:put $i}"), ["5"]);
}

#[test]
fn find_results_feed_other_commands() {
    let mut fake = Fake {
        found: vec![Value::Id(3)],
        got: Value::Num(100),
        ..Fake::default()
    };
    let script = r#":local d [/disk find where slot="S"]; :if ([:len $d] = 1) do={:if ([/disk get $d size] < 200) do={/disk set $d file-size=200}}"#;
    let finished = run_with(&mut fake, script);
    assert!(!finished.failed, "{:?}", finished.lines);
    let set = fake.calls.last().unwrap();
    assert_eq!(set.verb, Verb::Set);
    assert_eq!(set.positional, [Value::List(vec![Value::Id(3)])]);
    assert_eq!(set.named, [("file-size".to_string(), Value::Num(200))]);
    // `print` output goes to the script's output even inside brackets.
    assert_eq!(finished.lines, ["ran find", "ran get", "ran set"]);
}

#[test]
fn put_of_a_list_joins_with_semicolons() {
    let mut fake = Fake {
        found: vec![Value::Id(1), Value::Id(2)],
        ..Fake::default()
    };
    let finished = run_with(&mut fake, ":put [/disk find]");
    assert_eq!(finished.lines, ["ran find", "*1;*2"]);
}

#[test]
fn where_values_are_evaluated_before_the_command() {
    let mut fake = Fake::default();
    run_with(
        &mut fake,
        r#":local p "/a/b"; /file find where name=[:pick $p 1 [:len $p]] and size>=10G"#,
    );
    let inv = &fake.calls[0];
    let Some(crate::filter::Filter::And(left, _)) = &inv.filter else {
        panic!("{:?}", inv.filter)
    };
    assert_eq!(
        **left,
        crate::filter::Filter::Cmp {
            prop: "name".into(),
            op: crate::ast::CmpOp::Eq,
            value: Value::Str("a/b".into())
        }
    );
}

#[test]
fn short_circuit_skips_commands() {
    let mut fake = Fake::default();
    run_with(&mut fake, ":if (false && ([:len [/disk find]] = 0)) do={}");
    assert!(fake.calls.is_empty());
}
