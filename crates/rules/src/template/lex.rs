//! The lexer of Go's `text/template` (`text/template/parse/lex.go`), producing the same items
//! with the same error texts, since those texts reach users in Prometheus's error messages.
//!
//! Go lexes lazily while the parser pulls items; we lex eagerly into a vector that ends at the
//! first error item. The parser reads it in order, so an earlier parse error still wins over a
//! later lexing error, as in Go.

use super::gostr::quote;

/// What an item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Error,
    Bool,
    /// A printable ASCII character not otherwise used: `,` is the one the grammar knows.
    Char,
    CharConstant,
    Complex,
    Assign,
    Declare,
    Eof,
    Field,
    Identifier,
    LeftDelim,
    LeftParen,
    Number,
    Pipe,
    RawString,
    RightDelim,
    RightParen,
    Space,
    String,
    Text,
    Variable,
    // Keywords (Go's items after itemKeyword).
    Block,
    Break,
    Continue,
    Dot,
    Define,
    Else,
    End,
    If,
    Nil,
    Range,
    Template,
    With,
}

impl Kind {
    fn is_keyword(self) -> bool {
        matches!(
            self,
            Kind::Block
                | Kind::Break
                | Kind::Continue
                | Kind::Dot
                | Kind::Define
                | Kind::Else
                | Kind::End
                | Kind::If
                | Kind::Nil
                | Kind::Range
                | Kind::Template
                | Kind::With
        )
    }
}

/// One lexed item: its kind, byte offset, text and 1-based line.
#[derive(Clone, Debug)]
pub(super) struct Item {
    pub kind: Kind,
    pub pos: usize,
    pub val: String,
    pub line: usize,
}

impl Item {
    /// Go's `item.String()`, how parse errors name an item.
    pub fn describe(&self) -> String {
        match self.kind {
            Kind::Eof => "EOF".into(),
            Kind::Error => self.val.clone(),
            k if k.is_keyword() => format!("<{}>", self.val),
            _ if self.val.len() > 10 => {
                let head: String = self.val.chars().take(10).collect();
                format!("{}...", quote(&head))
            }
            _ => quote(&self.val),
        }
    }
}

const LEFT: &str = "{{";
const RIGHT: &str = "}}";
const LEFT_COMMENT: &str = "/*";
const RIGHT_COMMENT: &str = "*/";

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

fn has_left_trim(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0] == b'-' && is_space(b[1] as char)
}

fn has_right_trim(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && is_space(b[0] as char) && b[1] == b'-'
}

/// `%#U` of a rune: `U+00A0`, with the character quoted after it when it is printable.
fn sharp_u(c: char) -> String {
    if c.is_control() || c.is_whitespace() || c == char::REPLACEMENT_CHARACTER {
        format!("U+{:04X}", c as u32)
    } else {
        format!("U+{:04X} '{}'", c as u32, c)
    }
}

struct Lexer<'a> {
    input: &'a str,
    pos: usize,
    start: usize,
    paren_depth: i32,
    items: Vec<Item>,
    /// Line numbers are asked for at positions that never decrease: count from the last one.
    line_cache: std::cell::Cell<(usize, usize)>,
}

/// Lexes `input` into items ending with `Eof` or the first `Error`.
pub(super) fn lex(input: &str) -> Vec<Item> {
    let mut l = Lexer {
        input,
        pos: 0,
        start: 0,
        paren_depth: 0,
        items: Vec::new(),
        line_cache: std::cell::Cell::new((0, 1)),
    };
    l.run();
    l.items
}

enum State {
    Text,
    LeftDelim,
    InsideAction,
    Done,
}

impl<'a> Lexer<'a> {
    fn line_at(&self, pos: usize) -> usize {
        let (mut at, mut line) = self.line_cache.get();
        if pos < at {
            (at, line) = (0, 1);
        }
        line += self.input.as_bytes()[at..pos]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.line_cache.set((pos, line));
        line
    }

    fn rest(&self) -> &'a str {
        &self.input[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn backup(&mut self, c: Option<char>) {
        if let Some(c) = c {
            self.pos -= c.len_utf8();
        }
    }

    fn emit(&mut self, kind: Kind) {
        let val = self.input[self.start..self.pos].to_string();
        self.items.push(Item {
            kind,
            pos: self.start,
            val,
            line: self.line_at(self.start),
        });
        self.start = self.pos;
    }

    fn ignore(&mut self) {
        self.start = self.pos;
    }

    fn error(&mut self, msg: String) -> State {
        self.items.push(Item {
            kind: Kind::Error,
            pos: self.start,
            val: msg,
            line: self.line_at(self.start),
        });
        State::Done
    }

    fn accept(&mut self, valid: &str) -> bool {
        match self.peek() {
            Some(c) if valid.contains(c) => {
                self.pos += c.len_utf8();
                true
            }
            _ => false,
        }
    }

    fn accept_run(&mut self, valid: &str) {
        while self.accept(valid) {}
    }

    fn run(&mut self) {
        let mut state = State::Text;
        loop {
            state = match state {
                State::Text => self.lex_text(),
                State::LeftDelim => self.lex_left_delim(),
                State::InsideAction => self.lex_inside_action(),
                State::Done => return,
            };
        }
    }

    fn lex_text(&mut self) -> State {
        if let Some(x) = self.rest().find(LEFT) {
            if x > 0 {
                self.pos += x;
                let delim_end = self.pos + LEFT.len();
                let mut trim = 0;
                if has_left_trim(&self.input[delim_end..]) {
                    let text = &self.input[self.start..self.pos];
                    trim = text.len() - text.trim_end_matches(is_space).len();
                }
                self.pos -= trim;
                if self.pos > self.start {
                    self.emit(Kind::Text);
                }
                self.pos += trim;
                self.ignore();
            }
            return State::LeftDelim;
        }
        self.pos = self.input.len();
        if self.pos > self.start {
            self.emit(Kind::Text);
        }
        self.emit(Kind::Eof);
        State::Done
    }

    fn at_right_delim(&self) -> (bool, bool) {
        let rest = self.rest();
        if has_right_trim(rest) && rest[2..].starts_with(RIGHT) {
            return (true, true);
        }
        (rest.starts_with(RIGHT), false)
    }

    fn lex_left_delim(&mut self) -> State {
        self.pos += LEFT.len();
        let trim = has_left_trim(self.rest());
        let after = if trim { 2 } else { 0 };
        if self.input[self.pos + after..].starts_with(LEFT_COMMENT) {
            self.pos += after;
            self.ignore();
            return self.lex_comment();
        }
        self.emit(Kind::LeftDelim);
        self.pos += after;
        self.ignore();
        self.paren_depth = 0;
        State::InsideAction
    }

    fn lex_comment(&mut self) -> State {
        self.pos += LEFT_COMMENT.len();
        let Some(x) = self.rest().find(RIGHT_COMMENT) else {
            return self.error("unclosed comment".into());
        };
        self.pos += x + RIGHT_COMMENT.len();
        let (delim, trim) = self.at_right_delim();
        if !delim {
            return self.error("comment ends before closing delimiter".into());
        }
        if trim {
            self.pos += 2;
        }
        self.pos += RIGHT.len();
        if trim {
            self.skip_leading_space();
        }
        self.ignore();
        State::Text
    }

    fn skip_leading_space(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start_matches(is_space).len();
    }

    fn lex_right_delim(&mut self) -> State {
        let (_, trim) = self.at_right_delim();
        if trim {
            self.pos += 2;
            self.ignore();
        }
        self.pos += RIGHT.len();
        self.emit(Kind::RightDelim);
        if trim {
            self.skip_leading_space();
            self.ignore();
        }
        State::Text
    }

    fn lex_inside_action(&mut self) -> State {
        let (delim, trim) = self.at_right_delim();
        if delim {
            if trim || self.paren_depth == 0 {
                return self.lex_right_delim();
            }
            return self.error("unclosed left paren".into());
        }
        let c = self.next();
        match c {
            None => self.error("unclosed action".into()),
            Some(c) if is_space(c) => {
                self.backup(Some(c));
                self.lex_space()
            }
            Some('=') => {
                self.emit(Kind::Assign);
                State::InsideAction
            }
            Some(':') => {
                if self.next() != Some('=') {
                    return self.error("expected :=".into());
                }
                self.emit(Kind::Declare);
                State::InsideAction
            }
            Some('|') => {
                self.emit(Kind::Pipe);
                State::InsideAction
            }
            Some('"') => self.lex_quote(),
            Some('`') => self.lex_raw_quote(),
            Some('$') => self.lex_variable(),
            Some('\'') => self.lex_char(),
            Some('.') => {
                match self.peek() {
                    Some(d) if d.is_ascii_digit() => {
                        self.backup(Some('.'));
                        self.lex_number()
                    }
                    // Go checks only for a digit; anything else (EOF included) is a field.
                    _ => self.lex_field_or_variable(Kind::Field),
                }
            }
            Some(c) if c == '+' || c == '-' || c.is_ascii_digit() => {
                self.backup(Some(c));
                self.lex_number()
            }
            Some(c) if is_alnum(c) => {
                self.backup(Some(c));
                self.lex_identifier()
            }
            Some('(') => {
                self.emit(Kind::LeftParen);
                self.paren_depth += 1;
                State::InsideAction
            }
            Some(')') => {
                self.emit(Kind::RightParen);
                self.paren_depth -= 1;
                if self.paren_depth < 0 {
                    return self.error("unexpected right paren".into());
                }
                State::InsideAction
            }
            Some(c) if c.is_ascii() && !c.is_ascii_control() => {
                self.emit(Kind::Char);
                State::InsideAction
            }
            Some(c) => self.error(format!("unrecognized character in action: {}", sharp_u(c))),
        }
    }

    fn lex_space(&mut self) -> State {
        let mut n = 0;
        while let Some(c) = self.peek() {
            if !is_space(c) {
                break;
            }
            self.pos += c.len_utf8();
            n += 1;
        }
        // A space followed by "-}}" belongs to a trim-marked closing delimiter.
        let before = &self.input[self.pos - 1..];
        if has_right_trim(before) && before[2..].starts_with(RIGHT) {
            self.pos -= 1;
            if n == 1 {
                return self.lex_right_delim();
            }
        }
        self.emit(Kind::Space);
        State::InsideAction
    }

    fn at_terminator(&self) -> bool {
        match self.peek() {
            None => true,
            Some(c) if is_space(c) => true,
            Some('.' | ',' | '|' | ':' | ')' | '(') => true,
            Some(_) => self.rest().starts_with(RIGHT),
        }
    }

    fn lex_identifier(&mut self) -> State {
        loop {
            match self.next() {
                Some(c) if is_alnum(c) => {}
                c => {
                    self.backup(c);
                    if !self.at_terminator() {
                        return self.error(format!("bad character {}", sharp_u(c.unwrap_or('\0'))));
                    }
                    let word = &self.input[self.start..self.pos];
                    let kind = match word {
                        "block" => Kind::Block,
                        "break" => Kind::Break,
                        "continue" => Kind::Continue,
                        "define" => Kind::Define,
                        "else" => Kind::Else,
                        "end" => Kind::End,
                        "if" => Kind::If,
                        "range" => Kind::Range,
                        "nil" => Kind::Nil,
                        "template" => Kind::Template,
                        "with" => Kind::With,
                        "true" | "false" => Kind::Bool,
                        _ => Kind::Identifier,
                    };
                    self.emit(kind);
                    return State::InsideAction;
                }
            }
        }
    }

    fn lex_variable(&mut self) -> State {
        if self.at_terminator() {
            self.emit(Kind::Variable);
            return State::InsideAction;
        }
        self.lex_field_or_variable(Kind::Variable)
    }

    fn lex_field_or_variable(&mut self, kind: Kind) -> State {
        if self.at_terminator() {
            self.emit(if kind == Kind::Variable {
                Kind::Variable
            } else {
                Kind::Dot
            });
            return State::InsideAction;
        }
        let mut last;
        loop {
            last = self.next();
            match last {
                Some(c) if is_alnum(c) => {}
                _ => {
                    self.backup(last);
                    break;
                }
            }
        }
        if !self.at_terminator() {
            return self.error(format!("bad character {}", sharp_u(last.unwrap_or('\0'))));
        }
        self.emit(kind);
        State::InsideAction
    }

    fn lex_quote(&mut self) -> State {
        loop {
            match self.next() {
                Some('\\') => match self.next() {
                    None | Some('\n') => return self.error("unterminated quoted string".into()),
                    Some(_) => {}
                },
                None | Some('\n') => return self.error("unterminated quoted string".into()),
                Some('"') => break,
                Some(_) => {}
            }
        }
        self.emit(Kind::String);
        State::InsideAction
    }

    fn lex_raw_quote(&mut self) -> State {
        loop {
            match self.next() {
                None => return self.error("unterminated raw quoted string".into()),
                Some('`') => break,
                Some(_) => {}
            }
        }
        self.emit(Kind::RawString);
        State::InsideAction
    }

    fn lex_char(&mut self) -> State {
        loop {
            match self.next() {
                Some('\\') => match self.next() {
                    None | Some('\n') => {
                        return self.error("unterminated character constant".into())
                    }
                    Some(_) => {}
                },
                None | Some('\n') => return self.error("unterminated character constant".into()),
                Some('\'') => break,
                Some(_) => {}
            }
        }
        self.emit(Kind::CharConstant);
        State::InsideAction
    }

    fn lex_number(&mut self) -> State {
        if !self.scan_number() {
            let bad = self.input[self.start..self.pos].to_string();
            return self.error(format!("bad number syntax: {}", quote(&bad)));
        }
        if matches!(self.peek(), Some('+' | '-')) {
            // A complex number: 1+2i.
            if !self.scan_number() || !self.input[..self.pos].ends_with('i') {
                let bad = self.input[self.start..self.pos].to_string();
                return self.error(format!("bad number syntax: {}", quote(&bad)));
            }
            self.emit(Kind::Complex);
            return State::InsideAction;
        }
        self.emit(Kind::Number);
        State::InsideAction
    }

    fn scan_number(&mut self) -> bool {
        self.accept("+-");
        let mut digits = "0123456789_";
        if self.accept("0") {
            if self.accept("xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits.len() == 11 && self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        if digits.len() == 23 && self.accept("pP") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        self.accept("i");
        if let Some(c) = self.peek() {
            if is_alnum(c) {
                self.next();
                return false;
            }
        }
        true
    }
}
