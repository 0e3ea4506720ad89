//! The parser of Go's `text/template` (`text/template/parse/parse.go` and `node.go`): the same
//! grammar, the same checks at parse time (undefined functions and variables, `break` outside
//! `range`, non-executable pipeline stages) and the same error texts, and nodes that print
//! themselves as Go's `Node.String()` does, since execution errors quote them.

use std::collections::HashMap;

use super::gostr::{parse_int_base0, quote, unquote, unquote_char};
use super::lex::{lex, Item, Kind};

/// How deeply control structures and parentheses may nest; Go has no limit, but every level
/// costs stack when parsing and executing, and no real template comes near it.
const MAX_NESTING: usize = 100;

/// A parsed number literal, with every reading Go's `NumberNode` keeps.
#[derive(Clone, Debug)]
pub(super) struct Number {
    pub text: String,
    pub int: Option<i64>,
    pub uint: Option<u64>,
    pub float: Option<f64>,
}

/// An operand of a command.
#[derive(Debug)]
pub(super) enum Arg {
    /// `.A.B`: the field names.
    Field {
        pos: usize,
        idents: Vec<String>,
    },
    /// `$x.A.B`: the variable name (with `$`) then the field names.
    Variable {
        pos: usize,
        idents: Vec<String>,
    },
    /// `(pipe).A.B`, `fn.A`: the operand and the fields applied to it.
    Chain {
        pos: usize,
        node: Box<Arg>,
        fields: Vec<String>,
    },
    Identifier {
        pos: usize,
        name: String,
    },
    Dot {
        pos: usize,
    },
    Nil {
        pos: usize,
    },
    Bool {
        pos: usize,
        val: bool,
    },
    Number {
        pos: usize,
        num: Number,
    },
    String {
        pos: usize,
        quoted: String,
        text: String,
    },
    Pipe(Box<Pipe>),
}

/// A command: an operand followed by arguments.
#[derive(Debug)]
pub(super) struct Command {
    pub pos: usize,
    pub args: Vec<Arg>,
}

/// A pipeline with its optional declarations.
#[derive(Debug)]
pub(super) struct Pipe {
    pub pos: usize,
    pub is_assign: bool,
    /// Declared or assigned variables, each with its position.
    pub decl: Vec<(usize, String)>,
    pub cmds: Vec<Command>,
}

/// `{{template "name" pipe}}`.
#[derive(Debug)]
pub(super) struct TemplateCall {
    pub pos: usize,
    pub name: String,
    pub pipe: Option<Pipe>,
}

/// One node of a list.
#[derive(Debug)]
pub(super) enum Node {
    Text(String),
    Action { pos: usize, pipe: Pipe },
    If(Branch),
    With(Branch),
    Range(Branch),
    Template(TemplateCall),
    Break,
    Continue,
}

/// The shared shape of `if`, `with` and `range`.
#[derive(Debug)]
pub(super) struct Branch {
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

/// All templates one text defines, by name.
pub(super) type Trees = HashMap<String, Vec<Node>>;

impl Arg {
    pub fn pos(&self) -> usize {
        match self {
            Arg::Field { pos, .. }
            | Arg::Variable { pos, .. }
            | Arg::Chain { pos, .. }
            | Arg::Identifier { pos, .. }
            | Arg::Dot { pos }
            | Arg::Nil { pos }
            | Arg::Bool { pos, .. }
            | Arg::Number { pos, .. }
            | Arg::String { pos, .. } => *pos,
            Arg::Pipe(p) => p.pos,
        }
    }

    /// Go's `Node.String()`.
    pub fn write(&self, out: &mut String) {
        match self {
            Arg::Field { idents, .. } => {
                for i in idents {
                    out.push('.');
                    out.push_str(i);
                }
            }
            Arg::Variable { idents, .. } => out.push_str(&idents.join(".")),
            Arg::Chain { node, fields, .. } => {
                if let Arg::Pipe(p) = node.as_ref() {
                    out.push('(');
                    p.write(out);
                    out.push(')');
                } else {
                    node.write(out);
                }
                for f in fields {
                    out.push('.');
                    out.push_str(f);
                }
            }
            Arg::Identifier { name, .. } => out.push_str(name),
            Arg::Dot { .. } => out.push('.'),
            Arg::Nil { .. } => out.push_str("nil"),
            Arg::Bool { val, .. } => out.push_str(if *val { "true" } else { "false" }),
            Arg::Number { num, .. } => out.push_str(&num.text),
            Arg::String { quoted, .. } => out.push_str(quoted),
            Arg::Pipe(p) => p.write(out),
        }
    }

    pub fn string(&self) -> String {
        let mut s = String::new();
        self.write(&mut s);
        s
    }
}

impl Command {
    pub fn write(&self, out: &mut String) {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            if let Arg::Pipe(p) = a {
                out.push('(');
                p.write(out);
                out.push(')');
            } else {
                a.write(out);
            }
        }
    }
}

impl Pipe {
    pub fn write(&self, out: &mut String) {
        if !self.decl.is_empty() {
            for (i, (_, v)) in self.decl.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(v);
            }
            out.push_str(if self.is_assign { " = " } else { " := " });
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                out.push_str(" | ");
            }
            c.write(out);
        }
    }
}

impl TemplateCall {
    pub fn string(&self) -> String {
        match &self.pipe {
            None => format!("{{{{template {}}}}}", quote(&self.name)),
            Some(p) => {
                let mut s = format!("{{{{template {} ", quote(&self.name));
                p.write(&mut s);
                s.push_str("}}");
                s
            }
        }
    }
}

/// Go's `parse.IsEmptyTree`: only whitespace text.
fn is_empty_tree(list: &[Node]) -> bool {
    list.iter()
        .all(|n| matches!(n, Node::Text(t) if t.trim_matches([' ', '\t', '\n', '\r', '\u{b}', '\u{c}']).is_empty()))
}

/// What ended an item list.
enum End {
    End,
    Else,
}

struct Parser<'f> {
    name: String,
    items: Vec<Item>,
    cursor: usize,
    /// The furthest item read; Go reports parse errors at its line.
    furthest: usize,
    vars: Vec<String>,
    range_depth: usize,
    nesting: usize,
    trees: Trees,
    has_func: &'f dyn Fn(&str) -> bool,
}

type PResult<T> = Result<T, String>;

/// Parses `text` named `name` into its templates, the main one under `name`. `has_func` says
/// which function names exist (Go rejects unknown ones at parse time). Errors are Go's text:
/// `template: NAME:LINE: MSG`.
pub(super) fn parse(name: &str, text: &str, has_func: &dyn Fn(&str) -> bool) -> PResult<Trees> {
    let mut p = Parser {
        name: name.to_string(),
        items: lex(text),
        cursor: 0,
        furthest: 0,
        vars: vec!["$".into()],
        range_depth: 0,
        nesting: 0,
        trees: HashMap::new(),
        has_func,
    };
    let root = p.parse_root()?;
    p.add(name.to_string(), root)?;
    Ok(p.trees)
}

impl Parser<'_> {
    fn err<T>(&self, msg: impl AsRef<str>) -> PResult<T> {
        let line = self
            .items
            .get(self.furthest)
            .or(self.items.last())
            .map_or(1, |i| i.line);
        Err(format!(
            "template: {}:{}: {}",
            self.name,
            line,
            msg.as_ref()
        ))
    }

    fn next(&mut self) -> Item {
        let i = self.cursor.min(self.items.len() - 1);
        self.cursor = i + 1;
        self.furthest = self.furthest.max(i);
        self.items[i].clone()
    }

    fn backup(&mut self) {
        self.cursor -= 1;
    }

    fn peek(&mut self) -> Item {
        let it = self.next();
        self.backup();
        it
    }

    fn next_non_space(&mut self) -> Item {
        loop {
            let it = self.next();
            if it.kind != Kind::Space {
                return it;
            }
        }
    }

    fn peek_non_space(&mut self) -> Item {
        let it = self.next_non_space();
        self.backup();
        it
    }

    fn unexpected<T>(&self, item: &Item, context: &str) -> PResult<T> {
        if item.kind == Kind::Error {
            return self.err(&item.val);
        }
        self.err(format!("unexpected {} in {}", item.describe(), context))
    }

    fn expect(&mut self, kind: Kind, context: &str) -> PResult<Item> {
        let it = self.next_non_space();
        if it.kind != kind {
            return self.unexpected(&it, context);
        }
        Ok(it)
    }

    fn add(&mut self, name: String, list: Vec<Node>) -> PResult<()> {
        match self.trees.get(&name) {
            Some(old) if !is_empty_tree(old) => {
                if !is_empty_tree(&list) {
                    return self.err(format!(
                        "template: multiple definition of template {}",
                        quote(&name)
                    ));
                }
            }
            _ => {
                self.trees.insert(name, list);
            }
        }
        Ok(())
    }

    fn parse_root(&mut self) -> PResult<Vec<Node>> {
        let mut root = Vec::new();
        while self.peek().kind != Kind::Eof {
            if self.peek().kind == Kind::LeftDelim {
                let delim = self.cursor;
                self.next();
                if self.next_non_space().kind == Kind::Define {
                    self.parse_definition()?;
                    continue;
                }
                self.cursor = delim;
            }
            match self.text_or_action()? {
                Ok(n) => root.push(n),
                Err(End::End) => return self.err("unexpected {{end}}"),
                Err(End::Else) => return self.err("unexpected {{else}}"),
            }
        }
        Ok(root)
    }

    /// A sub-template (`define`, `block`) starts with no variables but `$`.
    fn with_fresh_vars<T>(&mut self, f: impl FnOnce(&mut Self) -> PResult<T>) -> PResult<T> {
        let saved = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let saved_depth = std::mem::replace(&mut self.range_depth, 0);
        let r = f(self);
        self.vars = saved;
        self.range_depth = saved_depth;
        r
    }

    fn parse_definition(&mut self) -> PResult<()> {
        const CONTEXT: &str = "define clause";
        let name = self.next_non_space();
        if !matches!(name.kind, Kind::String | Kind::RawString) {
            return self.unexpected(&name, CONTEXT);
        }
        let name = match unquote(&name.val) {
            Ok(n) => n,
            Err(e) => return self.err(e),
        };
        self.expect(Kind::RightDelim, CONTEXT)?;
        let (list, end) = self.with_fresh_vars(|p| p.item_list())?;
        if matches!(end, End::Else) {
            return self.err(format!("unexpected {{{{else}}}} in {CONTEXT}"));
        }
        self.add(name, list)
    }

    fn item_list(&mut self) -> PResult<(Vec<Node>, End)> {
        let mut list = Vec::new();
        while self.peek_non_space().kind != Kind::Eof {
            match self.text_or_action()? {
                Ok(n) => list.push(n),
                Err(end) => return Ok((list, end)),
            }
        }
        self.err("unexpected EOF")
    }

    fn text_or_action(&mut self) -> PResult<Result<Node, End>> {
        let tok = self.next_non_space();
        match tok.kind {
            Kind::Text => Ok(Ok(Node::Text(tok.val))),
            Kind::LeftDelim => self.action(),
            _ => self.unexpected(&tok, "input"),
        }
    }

    fn action(&mut self) -> PResult<Result<Node, End>> {
        let tok = self.next_non_space();
        match tok.kind {
            Kind::Block => return self.block_control().map(Ok),
            Kind::Break => return self.break_continue("{{break}}", Node::Break).map(Ok),
            Kind::Continue => return self.break_continue("{{continue}}", Node::Continue).map(Ok),
            Kind::Else => return self.else_control().map(Err),
            Kind::End => {
                self.expect(Kind::RightDelim, "end")?;
                return Ok(Err(End::End));
            }
            Kind::If => return self.control("if").map(|b| Ok(Node::If(b))),
            Kind::Range => return self.control("range").map(|b| Ok(Node::Range(b))),
            Kind::Template => return self.template_control().map(Ok),
            Kind::With => return self.control("with").map(|b| Ok(Node::With(b))),
            _ => {}
        }
        self.backup();
        let pos = self.peek().pos;
        let pipe = self.pipeline("command", Kind::RightDelim)?;
        Ok(Ok(Node::Action { pos, pipe }))
    }

    fn break_continue(&mut self, what: &str, node: Node) -> PResult<Node> {
        let tok = self.next_non_space();
        if tok.kind != Kind::RightDelim {
            return self.unexpected(&tok, what);
        }
        if self.range_depth == 0 {
            return self.err(format!("{what} outside {{{{range}}}}"));
        }
        Ok(node)
    }

    fn else_control(&mut self) -> PResult<End> {
        let peek = self.peek_non_space();
        if matches!(peek.kind, Kind::If | Kind::With) {
            return Ok(End::Else);
        }
        let _ = self.expect(Kind::RightDelim, "else")?;
        Ok(End::Else)
    }

    fn nest<T>(&mut self, f: impl FnOnce(&mut Self) -> PResult<T>) -> PResult<T> {
        if self.nesting >= MAX_NESTING {
            return self.err(format!(
                "template nests deeper than {MAX_NESTING} levels; flatten it or split it with define"
            ));
        }
        self.nesting += 1;
        let r = f(self);
        self.nesting -= 1;
        r
    }

    fn control(&mut self, context: &str) -> PResult<Branch> {
        self.nest(|p| {
            let mark = p.vars.len();
            let r = p.control_inner(context);
            p.vars.truncate(mark);
            r
        })
    }

    fn control_inner(&mut self, context: &str) -> PResult<Branch> {
        let pipe = self.pipeline(context, Kind::RightDelim)?;
        if context == "range" {
            self.range_depth += 1;
        }
        let r = self.item_list();
        if context == "range" {
            self.range_depth -= 1;
        }
        let (list, end) = r?;
        let else_list = match end {
            End::End => None,
            End::Else => {
                let peek = self.peek();
                if context == "if" && peek.kind == Kind::If {
                    self.next();
                    Some(vec![Node::If(self.control("if")?)])
                } else if context == "with" && peek.kind == Kind::With {
                    self.next();
                    Some(vec![Node::With(self.control("with")?)])
                } else {
                    let (list, end) = self.item_list()?;
                    if matches!(end, End::Else) {
                        return self.err("expected end; found {{else}}");
                    }
                    Some(list)
                }
            }
        };
        Ok(Branch {
            pipe,
            list,
            else_list,
        })
    }

    fn template_name(&mut self, tok: &Item, context: &str) -> PResult<String> {
        match tok.kind {
            Kind::String | Kind::RawString => match unquote(&tok.val) {
                Ok(s) => Ok(s),
                Err(e) => self.err(e),
            },
            _ => self.unexpected(tok, context),
        }
    }

    fn template_control(&mut self) -> PResult<Node> {
        const CONTEXT: &str = "template clause";
        let tok = self.next_non_space();
        let name = self.template_name(&tok, CONTEXT)?;
        let pipe = if self.next_non_space().kind != Kind::RightDelim {
            self.backup();
            Some(self.pipeline(CONTEXT, Kind::RightDelim)?)
        } else {
            None
        };
        Ok(Node::Template(TemplateCall {
            pos: tok.pos,
            name,
            pipe,
        }))
    }

    fn block_control(&mut self) -> PResult<Node> {
        const CONTEXT: &str = "block clause";
        let tok = self.next_non_space();
        let name = self.template_name(&tok, CONTEXT)?;
        let pipe = self.pipeline(CONTEXT, Kind::RightDelim)?;
        let (list, end) = self.nest(|p| p.with_fresh_vars(|p| p.item_list()))?;
        if matches!(end, End::Else) {
            return self.err(format!("unexpected {{{{else}}}} in {CONTEXT}"));
        }
        self.add(name.clone(), list)?;
        Ok(Node::Template(TemplateCall {
            pos: tok.pos,
            name,
            pipe: Some(pipe),
        }))
    }

    fn pipeline(&mut self, context: &str, end: Kind) -> PResult<Pipe> {
        let tok = self.peek_non_space();
        let mut pipe = Pipe {
            pos: tok.pos,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        'decls: loop {
            let v = self.peek_non_space();
            if v.kind != Kind::Variable {
                break;
            }
            let before = self.cursor;
            self.next_non_space();
            let after_var = self.peek();
            let next = self.peek_non_space();
            match next.kind {
                Kind::Assign | Kind::Declare => {
                    pipe.is_assign = next.kind == Kind::Assign;
                    self.next_non_space();
                    pipe.decl.push((v.pos, v.val.clone()));
                    self.vars.push(v.val);
                }
                Kind::Char if next.val == "," => {
                    self.next_non_space();
                    pipe.decl.push((v.pos, v.val.clone()));
                    self.vars.push(v.val);
                    if context == "range" && pipe.decl.len() < 2 {
                        match self.peek_non_space().kind {
                            Kind::Variable | Kind::RightDelim | Kind::RightParen => continue 'decls,
                            _ => return self.err("range can only initialize variables"),
                        }
                    }
                    return self.err(format!("too many declarations in {context}"));
                }
                _ => {
                    let _ = after_var;
                    self.cursor = before;
                }
            }
            break;
        }
        loop {
            let tok = self.next_non_space();
            match tok.kind {
                k if k == end => {
                    self.check_pipeline(&pipe, context)?;
                    return Ok(pipe);
                }
                Kind::Bool
                | Kind::CharConstant
                | Kind::Complex
                | Kind::Dot
                | Kind::Field
                | Kind::Identifier
                | Kind::Number
                | Kind::Nil
                | Kind::RawString
                | Kind::String
                | Kind::Variable
                | Kind::LeftParen => {
                    self.backup();
                    let cmd = self.command()?;
                    pipe.cmds.push(cmd);
                }
                _ => return self.unexpected(&tok, context),
            }
        }
    }

    fn check_pipeline(&self, pipe: &Pipe, context: &str) -> PResult<()> {
        if pipe.cmds.is_empty() {
            return self.err(format!("missing value for {context}"));
        }
        for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args[0],
                Arg::Bool { .. }
                    | Arg::Dot { .. }
                    | Arg::Nil { .. }
                    | Arg::Number { .. }
                    | Arg::String { .. }
            ) {
                return self.err(format!(
                    "non executable command in pipeline stage {}",
                    i + 1
                ));
            }
        }
        Ok(())
    }

    fn command(&mut self) -> PResult<Command> {
        let pos = self.peek_non_space().pos;
        let mut cmd = Command {
            pos,
            args: Vec::new(),
        };
        loop {
            self.peek_non_space();
            if let Some(op) = self.operand()? {
                cmd.args.push(op);
            }
            let tok = self.next();
            match tok.kind {
                Kind::Space => continue,
                Kind::RightDelim | Kind::RightParen => self.backup(),
                Kind::Pipe => {}
                _ => return self.unexpected(&tok, "operand"),
            }
            break;
        }
        if cmd.args.is_empty() {
            return self.err("empty command");
        }
        Ok(cmd)
    }

    fn operand(&mut self) -> PResult<Option<Arg>> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if self.peek().kind != Kind::Field {
            return Ok(Some(node));
        }
        let chain_pos = self.peek().pos;
        let mut fields = Vec::new();
        while self.peek().kind == Kind::Field {
            let f = self.next();
            fields.push(f.val[1..].to_string());
        }
        Ok(Some(match node {
            Arg::Field { mut idents, .. } => {
                idents.extend(fields);
                Arg::Field {
                    pos: chain_pos,
                    idents,
                }
            }
            Arg::Variable { mut idents, .. } => {
                idents.extend(fields);
                Arg::Variable {
                    pos: chain_pos,
                    idents,
                }
            }
            Arg::Bool { .. }
            | Arg::String { .. }
            | Arg::Number { .. }
            | Arg::Nil { .. }
            | Arg::Dot { .. } => {
                return self.err(format!("unexpected . after term {}", quote(&node.string())));
            }
            node => Arg::Chain {
                pos: chain_pos,
                node: Box::new(node),
                fields,
            },
        }))
    }

    fn term(&mut self) -> PResult<Option<Arg>> {
        let tok = self.next_non_space();
        let pos = tok.pos;
        Ok(Some(match tok.kind {
            Kind::Identifier => {
                if !(self.has_func)(&tok.val) {
                    return self.err(format!("function {} not defined", quote(&tok.val)));
                }
                Arg::Identifier { pos, name: tok.val }
            }
            Kind::Dot => Arg::Dot { pos },
            Kind::Nil => Arg::Nil { pos },
            Kind::Variable => {
                let idents: Vec<String> = tok.val.split('.').map(str::to_string).collect();
                if !self.vars.contains(&idents[0]) {
                    return self.err(format!("undefined variable {}", quote(&idents[0])));
                }
                Arg::Variable { pos, idents }
            }
            Kind::Field => Arg::Field {
                pos,
                idents: tok.val[1..].split('.').map(str::to_string).collect(),
            },
            Kind::Bool => Arg::Bool {
                pos,
                val: tok.val == "true",
            },
            Kind::CharConstant | Kind::Complex | Kind::Number => {
                let num = match new_number(&tok.val, tok.kind) {
                    Ok(n) => n,
                    Err(e) => return self.err(e),
                };
                Arg::Number { pos, num }
            }
            Kind::LeftParen => {
                let pipe = self.nest(|p| p.pipeline("parenthesized pipeline", Kind::RightParen))?;
                Arg::Pipe(Box::new(pipe))
            }
            Kind::String | Kind::RawString => match unquote(&tok.val) {
                Ok(text) => Arg::String {
                    pos,
                    quoted: tok.val,
                    text,
                },
                Err(e) => return self.err(e),
            },
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }
}

/// Go's `newNumber`: every reading of a literal (int, uint, float) that is exact.
fn new_number(text: &str, kind: Kind) -> Result<Number, String> {
    let mut n = Number {
        text: text.to_string(),
        int: None,
        uint: None,
        float: None,
    };
    if kind == Kind::CharConstant {
        let body = &text[1..];
        let (c, tail) = unquote_char(body, '\'').map_err(|_| "invalid syntax".to_string())?;
        if tail != "'" {
            return Err(format!("malformed character constant: {text}"));
        }
        n.int = Some(c as i64);
        n.uint = Some(c as u64);
        n.float = Some(c as u32 as f64);
        return Ok(n);
    }
    if kind == Kind::Complex || text.ends_with('i') {
        return Err(format!(
            "complex number {text} is not supported in templates"
        ));
    }
    let (i, u) = parse_int_base0(text);
    n.int = i;
    n.uint = u;
    if i == Some(0) {
        n.uint = Some(0);
    }
    if let Some(i) = n.int {
        n.float = Some(i as f64);
    } else if let Some(u) = n.uint {
        n.float = Some(u as f64);
    } else {
        let clean: String = text.chars().filter(|&c| c != '_').collect();
        if let Ok(f) = clean.parse::<f64>() {
            if !text.contains(['.', 'e', 'E', 'p', 'P']) {
                return Err(format!("integer overflow: {}", quote(text)));
            }
            if f.is_finite() {
                n.float = Some(f);
                if f.fract() == 0.0
                    && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f)
                {
                    n.int = Some(f as i64);
                }
                if f.fract() == 0.0 && (0.0..1.844_674_407_370_955_2e19).contains(&f) {
                    n.uint = Some(f as u64);
                }
            }
        }
    }
    if n.int.is_none() && n.uint.is_none() && n.float.is_none() {
        return Err(format!("illegal number syntax: {}", quote(text)));
    }
    Ok(n)
}
