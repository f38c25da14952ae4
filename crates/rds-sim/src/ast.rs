//! The syntax tree the parser builds and the interpreter runs.
//!
//! Menu commands are resolved while parsing: a [`MenuCommand`] already knows
//! its absolute menu and verb, so the interpreter never deals with relative
//! paths, and unknown names never reach it.

use crate::error::Pos;
use crate::lexer::StrPart;
use crate::menu::{Menu, Verb};

/// A sequence of commands, run in order in a scope of its own.
pub type Block = Vec<Command>;

/// A command: a statement, or the body of a `[…]` substitution.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `/disk add …`, `find where …`.
    Menu(MenuCommand),
    /// `:local name value` or `:global name value`.
    Local {
        /// Variable name.
        name: String,
        /// Initial value; none leaves the variable empty.
        value: Option<Expr>,
        /// `:global`: declared in the script's outermost scope.
        global: bool,
    },
    /// `:set name value`.
    Set {
        /// Variable name.
        name: String,
        /// New value; none empties it.
        value: Option<Expr>,
    },
    /// `:put value`.
    Put(Option<Expr>),
    /// `:if (cond) do={…} else={…}`.
    If {
        /// Must evaluate to a boolean.
        cond: Expr,
        /// Run when true.
        then: Block,
        /// Run when false.
        otherwise: Option<Block>,
    },
    /// `:do {…} on-error={…}`.
    Do {
        /// The guarded block.
        body: Block,
        /// Run instead of failing when the body raises an error.
        on_error: Option<Block>,
    },
    /// `:error value`: raise the script's own error.
    Error(Expr),
    /// `:foreach var in=list do={…}`.
    Foreach {
        /// Loop variable, local to the body.
        var: String,
        /// The list to walk (a single value counts as one item).
        list: Expr,
        /// Run once per item.
        body: Block,
    },
    /// `:len value`.
    Len(Expr),
    /// `:pick value start [end]`.
    Pick {
        /// A string or a list.
        value: Expr,
        /// First position, from 0.
        start: Expr,
        /// Position after the last one; none picks one element.
        end: Option<Expr>,
    },
    /// `:tostr value`.
    ToStr(Expr),
    /// `:tonum value`.
    ToNum(Expr),
    /// `:typeof value`.
    TypeOf(Expr),
    /// `{ … }` as a statement.
    Block(Block),
    /// A value standing as a statement, e.g. `[/disk find]`.
    Eval(Expr),
}

/// A command of a menu, with its arguments in source order.
#[derive(Debug, Clone, PartialEq)]
pub struct MenuCommand {
    /// The absolute menu.
    pub menu: Menu,
    /// The command.
    pub verb: Verb,
    /// Where the command word starts.
    pub pos: Pos,
    /// Arguments and flags, in the order written.
    pub args: Vec<Arg>,
    /// The `where` condition of `print`, or the condition of `find`.
    pub cond: Option<Cond>,
}

/// One argument of a menu command.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// An unnamed value: an item, or `get`'s property name.
    Positional(Expr),
    /// `name=value`.
    Named {
        /// The argument's name.
        name: String,
        /// Its value (an empty literal for `name=` followed by a space).
        value: Expr,
    },
    /// A `print` flag such as `detail`.
    Flag(String),
}

/// A value expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A literal: a bare word or a quoted string without variables.
    Lit {
        /// The text, escapes decoded.
        text: String,
        /// Whether it was quoted (quoted literals are always strings).
        quoted: bool,
    },
    /// A quoted string with `$variables` in it.
    Interp(Vec<StrPart>),
    /// `$name`.
    Var(String),
    /// `[command]`.
    Sub(Box<Command>),
    /// `{…}`, only as the value of `do=`, `else=`, `on-error=`.
    Block(Block),
    /// `( … )`: kept apart from its content so that a parenthesised
    /// literal is not mistaken for a literal argument.
    Paren(Box<Expr>),
    /// `!x` or `not x`.
    Not(Box<Expr>),
    /// A binary operation.
    Binary(BinOp, Box<Expr>, Box<Expr>),
}

/// Binary operators of `(…)` expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// A comparison.
    Cmp(CmpOp),
    /// `&&` or `and`.
    And,
    /// `||` or `or`.
    Or,
    /// `.`: string concatenation.
    Concat,
}

/// Comparison operators, shared by expressions and `where` conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `>=`
    Ge,
    /// `~`: regular-expression match.
    Match,
}

impl CmpOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Gt => ">",
            CmpOp::Le => "<=",
            CmpOp::Ge => ">=",
            CmpOp::Match => "~",
        }
    }
}

/// A `where` condition over a record's properties.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// Both hold.
    And(Box<Cond>, Box<Cond>),
    /// Either holds.
    Or(Box<Cond>, Box<Cond>),
    /// Does not hold.
    Not(Box<Cond>),
    /// `prop OP value`.
    Cmp {
        /// Property name.
        prop: String,
        /// Operator.
        op: CmpOp,
        /// The value compared with.
        value: Expr,
    },
    /// A bare property name: holds when the property is `yes`.
    Truthy(String),
}
