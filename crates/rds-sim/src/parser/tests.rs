//! Parser tests: shapes of the tree, menu resolution, and error positions.

use super::*;
use crate::ast::{BinOp, CmpOp, Cond};

fn parse(text: &str) -> Block {
    parse_script(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn menu_command(text: &str) -> MenuCommand {
    match parse(text).as_slice() {
        [Command::Menu(c)] => c.clone(),
        other => panic!("not one menu command: {other:?}"),
    }
}

fn lit(text: &str, quoted: bool) -> Expr {
    Expr::Lit {
        text: text.to_string(),
        quoted,
    }
}

fn error(text: &str) -> String {
    parse_script(text).unwrap_err().to_string()
}

#[test]
fn menu_forms_are_equivalent() {
    for text in [
        "/disk add slot=a",
        "/disk/add slot=a",
        "disk add slot=a",
        "/ disk add slot=a",
    ] {
        let c = menu_command(text);
        assert_eq!((c.menu, c.verb), (Menu::Disk, Verb::Add), "{text}");
    }
    for text in [
        "/system resource print",
        "/system/resource/print",
        "/system/resource print",
    ] {
        let c = menu_command(text);
        assert_eq!(
            (c.menu, c.verb),
            (Menu::SystemResource, Verb::Print),
            "{text}"
        );
    }
}

#[test]
fn arguments_keep_their_order_and_kind() {
    let c =
        menu_command(r#"/disk add type=file file-path="/raid10/v/x.img" file-size=10G comment="""#);
    assert_eq!(
        c.args,
        vec![
            Arg::Named {
                name: "type".into(),
                value: lit("file", false)
            },
            Arg::Named {
                name: "file-path".into(),
                value: lit("/raid10/v/x.img", true)
            },
            Arg::Named {
                name: "file-size".into(),
                value: lit("10G", false)
            },
            Arg::Named {
                name: "comment".into(),
                value: lit("", true)
            },
        ]
    );
}

#[test]
fn bare_values_run_across_equals_signs() {
    let c = menu_command("/disk set a comment=x=y!z");
    assert_eq!(
        c.args[1],
        Arg::Named {
            name: "comment".into(),
            value: lit("x=y!z", false)
        }
    );
}

#[test]
fn empty_value_before_a_space() {
    let c = menu_command("/disk set a comment= slot=b");
    assert_eq!(
        c.args[1],
        Arg::Named {
            name: "comment".into(),
            value: lit("", false)
        }
    );
}

#[test]
fn print_flags_and_where() {
    let c = menu_command(r#"/disk print detail as-value where slot="S" and size>=10 or !disabled"#);
    assert_eq!(
        c.args,
        vec![Arg::Flag("detail".into()), Arg::Flag("as-value".into())]
    );
    let expected = Cond::Or(
        Box::new(Cond::And(
            Box::new(Cond::Cmp {
                prop: "slot".into(),
                op: CmpOp::Eq,
                value: lit("S", true),
            }),
            Box::new(Cond::Cmp {
                prop: "size".into(),
                op: CmpOp::Ge,
                value: lit("10", false),
            }),
        )),
        Box::new(Cond::Not(Box::new(Cond::Truthy("disabled".into())))),
    );
    assert_eq!(c.cond, Some(expected));
}

#[test]
fn find_takes_bare_or_where_condition() {
    let a = menu_command(r#"/disk find slot~"^pvc-""#);
    let b = menu_command(r#"/disk find where slot~"^pvc-""#);
    assert_eq!(a.cond, b.cond);
    assert!(matches!(
        a.cond,
        Some(Cond::Cmp {
            op: CmpOp::Match,
            ..
        })
    ));
    assert_eq!(menu_command("/disk find").cond, None);
}

#[test]
fn bracketed_command_runs_in_the_enclosing_menu() {
    let c = menu_command(r#"/file remove [find where name="x"]"#);
    let Arg::Positional(Expr::Sub(sub)) = &c.args[0] else {
        panic!("{c:?}")
    };
    let Command::Menu(inner) = sub.as_ref() else {
        panic!("{sub:?}")
    };
    assert_eq!((inner.menu, inner.verb), (Menu::File, Verb::Find));
}

#[test]
fn lone_menu_path_changes_the_current_menu() {
    let block = parse("/disk\nadd slot=a\n/file\nprint");
    let menus: Vec<(Menu, Verb)> = block
        .iter()
        .map(|c| match c {
            Command::Menu(m) => (m.menu, m.verb),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        menus,
        vec![(Menu::Disk, Verb::Add), (Menu::File, Verb::Print)]
    );
    // A menu change inside a block stays inside it.
    assert_eq!(
        error("{/disk}; add"),
        "bad command name add (line 1 column 10)"
    );
}

#[test]
fn scripting_commands() {
    let block = parse(
        r#":local d [/disk find where slot="S"]; :if ([:len $d] = 1) do={:set d 2} else={:put "no"}; :do {:error "x"} on-error={:put $d}; :foreach i in=$d do={:put ($i . "-")}; :put [:pick "abc" 1 [:len "abc"]]; :global g; :put [:tonum "5"]; :put [:tostr 5]; :put [:typeof $d]"#,
    );
    assert_eq!(block.len(), 9);
    let Command::If {
        cond, otherwise, ..
    } = &block[1]
    else {
        panic!("{:?}", block[1])
    };
    let Expr::Paren(cond) = cond else {
        panic!("{cond:?}")
    };
    assert!(matches!(
        cond.as_ref(),
        Expr::Binary(BinOp::Cmp(CmpOp::Eq), _, _)
    ));
    assert!(otherwise.is_some());
    assert!(matches!(
        &block[2],
        Command::Do {
            on_error: Some(_),
            ..
        }
    ));
    assert!(matches!(&block[3], Command::Foreach { .. }));
    assert!(matches!(
        &block[5],
        Command::Local {
            value: None,
            global: true,
            ..
        }
    ));
}

#[test]
fn expression_precedence() {
    let block = parse(r#":put ("a" . "b" = "ab" && !false || 1 < 2)"#);
    let Command::Put(Some(Expr::Paren(inner))) = &block[0] else {
        panic!("{block:?}")
    };
    let Expr::Binary(BinOp::Or, left, _) = inner.as_ref() else {
        panic!("{inner:?}")
    };
    let Expr::Binary(BinOp::And, cmp, not) = left.as_ref() else {
        panic!("{left:?}")
    };
    assert!(
        matches!(cmp.as_ref(), Expr::Binary(BinOp::Cmp(CmpOp::Eq), l, _)
        if matches!(l.as_ref(), Expr::Binary(BinOp::Concat, _, _)))
    );
    assert!(matches!(not.as_ref(), Expr::Not(_)));
}

#[test]
fn contract_scripts_parse() {
    for script in [
        r#":if ([:len [/disk find where slot="S"]] = 0) do={:if ([:len [/disk find where file-path="/p/x.img"]] > 0) do={:error "file-path already in use by another disk"}; :if ([:len [/file find where name="p/x.img"]] > 0) do={/file remove [/file find where name="p/x.img"]}; /disk add type=file file-path="/p/x.img" file-size=1 slot="S" mount-filesystem=no nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn="Q" comment="C"}; /disk print detail where slot="S""#,
        r#":local d [/disk find where slot="S"]; :if ([:len $d] = 1) do={:if ([/disk get $d size] < 5) do={/disk set $d file-size=5}}; /disk print detail where slot="S""#,
        r#":local p "/p/x.img"; :local d [/disk find where slot="S"]; :if ([:len $d] > 0) do={:set p [/disk get $d file-path]; /disk remove $d}; :local f [/file find where name=[:pick $p 1 [:len $p]]]; :if ([:len $f] > 0) do={/file remove $f}"#,
        r#"/disk print detail where mount-point="raid10""#,
        "/system resource print",
    ] {
        parse(script);
    }
}

#[test]
fn bad_command_names_point_at_the_word() {
    assert_eq!(
        error("/disk frob"),
        "bad command name frob (line 1 column 7)"
    );
    assert_eq!(
        error("/disk/frob"),
        "bad command name frob (line 1 column 7)"
    );
    assert_eq!(error("/ttt"), "bad command name ttt (line 1 column 2)");
    assert_eq!(error("find"), "bad command name find (line 1 column 1)");
    assert_eq!(error(":frob 1"), "bad command name frob (line 1 column 2)");
    assert_eq!(
        error("/disk add\n/disk prnt"),
        "bad command name prnt (line 2 column 7)"
    );
    assert_eq!(error("/file add"), "bad command name add (line 1 column 7)");
    assert_eq!(
        error("/disk add print"),
        "expected end of command (line 1 column 11)"
    );
}

#[test]
fn unknown_arguments_and_extra_words() {
    assert_eq!(
        error("/disk add frob=1"),
        "expected end of command (line 1 column 11)"
    );
    assert_eq!(
        error("/disk print frob"),
        "expected end of command (line 1 column 13)"
    );
    assert_eq!(
        error("/disk print where frob=1"),
        "expected end of command (line 1 column 19)"
    );
    assert_eq!(
        error("/disk remove a b"),
        "expected end of command (line 1 column 16)"
    );
    assert_eq!(
        error("/disk set a file-path=/x"),
        "expected end of command (line 1 column 13)"
    );
    assert_eq!(
        error(r#"/disk add slot="a""b""#),
        "expected end of command (line 1 column 19)"
    );
    assert_eq!(
        error("/disk print where slot=a detail"),
        "expected end of command (line 1 column 26)"
    );
    assert_eq!(
        error(":put 1 2"),
        "expected end of command (line 1 column 8)"
    );
}

#[test]
fn syntax_errors() {
    assert_eq!(error(":if (1 = 1 do={}"), "syntax error (line 1 column 12)");
    assert_eq!(error(":put [/disk find"), "syntax error (line 1 column 17)");
    assert_eq!(error("{ :put 1"), "syntax error (line 1 column 9)");
    assert_eq!(error("}"), "syntax error (line 1 column 1)");
    assert_eq!(error(":if (true)"), "syntax error (line 1 column 1)");
    assert_eq!(
        error("/disk print where"),
        "syntax error (line 1 column 18)"
    );
    assert_eq!(
        error("/disk print where slot="),
        "syntax error (line 1 column 24)"
    );
    assert_eq!(error(":put (1 = )"), "syntax error (line 1 column 11)");
}

#[test]
fn single_command_returns_literal_values() {
    let c = parse_single_command(
        r#"/disk add slot="a\"b\\c\$d\?e" file-size=1024 nvme-tcp-export=yes"#,
    )
    .unwrap();
    assert_eq!(c.menu, "/disk");
    assert_eq!(c.verb, "add");
    assert_eq!(
        c.args,
        vec![
            (Some("slot".into()), "a\"b\\c$d?e".into()),
            (Some("file-size".into()), "1024".into()),
            (Some("nvme-tcp-export".into()), "yes".into()),
        ]
    );
    let c = parse_single_command(r#"/disk/set "S" comment="x y""#).unwrap();
    assert_eq!(
        c.args,
        vec![(None, "S".into()), (Some("comment".into()), "x y".into())]
    );
    let c = parse_single_command(r#"/disk print detail where slot~"^p" and size>5"#).unwrap();
    assert_eq!(
        c.args,
        vec![
            (None, "detail".into()),
            (None, "where".into()),
            (Some("slot~".into()), "^p".into()),
            (Some("size>".into()), "5".into()),
        ]
    );
    let c = parse_single_command("/system resource print\n").unwrap();
    assert_eq!(
        (c.menu.as_str(), c.verb.as_str()),
        ("/system/resource", "print")
    );
}

#[test]
fn single_command_rejects_everything_else() {
    for text in [
        "/disk add slot=a; /disk add slot=b",
        "/disk add slot=a\n/disk print",
        "/disk; add slot=a",
        "/disk remove [find]",
        "/disk set $d comment=x",
        r#"/disk add comment="x$y""#,
        "/disk add comment=(1)",
        "/disk add slot=a ]",
        "/disk add slot=a extra",
        ":put 1",
        "",
        "/disk print where slot=a or slot=b",
    ] {
        let result = parse_single_command(text);
        assert!(result.is_err(), "{text}: {result:?}");
    }
}

#[test]
fn deep_nesting_is_refused_not_a_crash() {
    let deep = format!(":put {}1{}", "(".repeat(100_000), ")".repeat(100_000));
    assert!(error(&deep).starts_with("syntax error"));
    let bangs = format!(":put ({}true)", "!".repeat(100_000));
    assert!(error(&bangs).starts_with("syntax error"));
    let braces = format!("{}{}", "{".repeat(100_000), "}".repeat(100_000));
    assert!(error(&braces).starts_with("syntax error"));
    let chain = format!(":put (\"a\"{})", " . \"b\"".repeat(100_000));
    assert!(error(&chain).starts_with("syntax error"));
    let ors = format!("/disk print where slot=a{}", " or slot=b".repeat(100_000));
    assert!(error(&ors).starts_with("syntax error"));
    let fine = format!(":put {}1{}", "(".repeat(50), ")".repeat(50));
    parse(&fine);
}
