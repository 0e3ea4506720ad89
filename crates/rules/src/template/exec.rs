//! Execution of parsed templates, following Go's `text/template/exec.go` step for step: the
//! same evaluation order, the same places where the "current node" moves (Go's `s.at`), so
//! errors name the same node and column, and the same rules for fields, maps, methods,
//! argument types and variables, with `missingkey=zero` as Prometheus sets it.
//!
//! Unlike Go, execution is bounded: output size, steps (so `range` over a huge integer ends),
//! template call depth and recursion depth all have limits, reported as ordinary errors.

use std::rc::Rc;

use super::funcs::{self, Callee, Env, Func, Method, ParamTy};
use super::gostr::quote;
use super::parse::{Arg, Branch, Command, Node, Pipe, TemplateCall, Trees};
use super::printf::sprint_value;
use super::value::Value;
use super::{MAX_OUTPUT_BYTES, MAX_STEPS, MAX_TEMPLATE_DEPTH};

/// How deeply execution may recurse (nested pipelines, control structures and template
/// calls together); keeps the native stack bounded whatever the template does.
const MAX_RECURSION: usize = 400;

/// Where execution is, for error messages (Go's `state.node`).
#[derive(Clone, Copy)]
enum At<'t> {
    Arg(&'t Arg),
    Cmd(&'t Command),
    Pipe(&'t Pipe),
    Action(usize, &'t Pipe),
    Template(&'t TemplateCall),
}

impl At<'_> {
    fn pos(&self) -> usize {
        match self {
            At::Arg(a) => a.pos(),
            At::Cmd(c) => c.pos,
            At::Pipe(p) => p.pos,
            At::Action(pos, _) => *pos,
            At::Template(t) => t.pos,
        }
    }

    fn string(&self) -> String {
        let mut s = String::new();
        match self {
            At::Arg(a) => a.write(&mut s),
            At::Cmd(c) => c.write(&mut s),
            At::Pipe(p) => p.write(&mut s),
            At::Action(_, p) => {
                s.push_str("{{");
                p.write(&mut s);
                s.push_str("}}");
            }
            At::Template(t) => s = t.string(),
        }
        s
    }
}

/// Why evaluation stopped early.
pub(super) enum Flow {
    Error(String),
    Break,
    Continue,
}

type R<T> = Result<T, Flow>;

pub(super) struct Exec<'t, 'e> {
    text: &'t str,
    parse_name: &'t str,
    tmpl_name: &'t str,
    trees: &'t Trees,
    vars: Vec<(&'t str, Value)>,
    at: Option<At<'t>>,
    out: String,
    steps: u64,
    depth: usize,
    recursion: usize,
    env: &'e Env<'e>,
}

/// Runs the template `name` of `trees` (parsed from `text`) on `data`.
pub(super) fn execute(
    text: &str,
    name: &str,
    trees: &Trees,
    data: Value,
    env: &Env<'_>,
) -> Result<String, String> {
    let Some((key, root)) = trees.get_key_value(name) else {
        return Err(format!(
            "template: {name}: {} is an incomplete or empty template",
            quote(name)
        ));
    };
    let mut s = Exec {
        text,
        parse_name: key,
        tmpl_name: key,
        trees,
        vars: vec![("$", data.clone())],
        at: None,
        out: String::new(),
        steps: 0,
        depth: 0,
        recursion: 0,
        env,
    };
    match s.walk_list(&data, root) {
        Ok(()) => Ok(s.out),
        Err(Flow::Error(e)) => Err(e),
        // The parser keeps break and continue inside range.
        Err(Flow::Break | Flow::Continue) => Ok(s.out),
    }
}

impl<'t> Exec<'t, '_> {
    /// Go's `state.errorf`: `template: NAME:LINE:COL: executing "TMPL" at <NODE>: MSG`.
    fn error(&self, msg: impl AsRef<str>) -> Flow {
        let msg = msg.as_ref();
        Flow::Error(match self.at {
            None => format!("template: {}: {msg}", self.tmpl_name),
            Some(at) => {
                let pos = at.pos().min(self.text.len());
                let before = &self.text[..pos];
                let line = 1 + before.bytes().filter(|&b| b == b'\n').count();
                let col = match before.rfind('\n') {
                    None => pos,
                    Some(nl) => pos - nl - 1,
                };
                format!(
                    "template: {}:{line}:{col}: executing {} at <{}>: {msg}",
                    self.parse_name,
                    quote(self.tmpl_name),
                    at.string()
                )
            }
        })
    }

    fn errorf<T>(&self, msg: impl AsRef<str>) -> R<T> {
        Err(self.error(msg))
    }

    fn step(&mut self) -> R<()> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return self.errorf(format!(
                "template evaluation took more than {MAX_STEPS} steps; shorten its ranges and loops"
            ));
        }
        Ok(())
    }

    fn enter(&mut self) -> R<()> {
        self.recursion += 1;
        if self.recursion > MAX_RECURSION {
            return self.errorf(format!(
                "template evaluation nests deeper than {MAX_RECURSION} levels; flatten its templates"
            ));
        }
        Ok(())
    }

    fn write(&mut self, s: &str) -> R<()> {
        if self.out.len() + s.len() > MAX_OUTPUT_BYTES {
            return self.errorf(format!(
                "template output exceeds {MAX_OUTPUT_BYTES} bytes; make the template print less"
            ));
        }
        self.out.push_str(s);
        Ok(())
    }

    fn walk_list(&mut self, dot: &Value, list: &'t [Node]) -> R<()> {
        self.enter()?;
        for n in list {
            let r = self.walk(dot, n);
            if r.is_err() {
                self.recursion -= 1;
                return r;
            }
        }
        self.recursion -= 1;
        Ok(())
    }

    fn walk(&mut self, dot: &Value, node: &'t Node) -> R<()> {
        self.step()?;
        match node {
            Node::Text(t) => self.write(t),
            Node::Action { pos, pipe } => {
                self.at = Some(At::Action(*pos, pipe));
                let v = self.eval_pipeline(dot, pipe)?;
                if pipe.decl.is_empty() {
                    self.at = Some(At::Action(*pos, pipe));
                    let s = match &v {
                        Value::Invalid => "<no value>".to_string(),
                        // Go prints what a pointer points to: no `&`.
                        Value::Sample(_) => {
                            let s = sprint_value(&v);
                            s.strip_prefix('&').unwrap_or(&s).to_string()
                        }
                        v => sprint_value(v),
                    };
                    self.write(&s)?;
                }
                Ok(())
            }
            Node::If(b) => self.walk_if_or_with(dot, b, false),
            Node::With(b) => self.walk_if_or_with(dot, b, true),
            Node::Range(b) => self.walk_range(dot, b),
            Node::Template(t) => self.walk_template(dot, t),
            Node::Break => Err(Flow::Break),
            Node::Continue => Err(Flow::Continue),
        }
    }

    fn walk_if_or_with(&mut self, dot: &Value, b: &'t Branch, with: bool) -> R<()> {
        let mark = self.vars.len();
        let r = (|| {
            let val = self.eval_pipeline(dot, &b.pipe)?;
            if val.clone().indirect_iface().truth() {
                if with {
                    self.walk_list(&val, &b.list)
                } else {
                    self.walk_list(dot, &b.list)
                }
            } else if let Some(e) = &b.else_list {
                self.walk_list(dot, e)
            } else {
                Ok(())
            }
        })();
        self.vars.truncate(mark);
        r
    }

    fn walk_range(&mut self, dot: &Value, b: &'t Branch) -> R<()> {
        let mark = self.vars.len();
        let r = self.walk_range_inner(dot, b);
        self.vars.truncate(mark);
        match r {
            Err(Flow::Break) => Ok(()),
            r => r,
        }
    }

    fn walk_range_inner(&mut self, dot: &Value, b: &'t Branch) -> R<()> {
        let val = self.eval_pipeline(dot, &b.pipe)?;
        let mark = self.vars.len();
        let mut ran = false;
        match &val {
            Value::Samples(v) => {
                for (i, s) in v.iter().enumerate() {
                    ran = true;
                    self.one_iteration(b, mark, Value::Int(i as i64), Value::Sample(s.clone()))?;
                }
            }
            Value::StrMap(m) => {
                for (k, v) in m.iter() {
                    ran = true;
                    self.one_iteration(b, mark, Value::str(k.as_str()), Value::str(v.as_str()))?;
                }
            }
            Value::AnyMap(m) => {
                for (k, v) in m.iter() {
                    ran = true;
                    self.one_iteration(b, mark, Value::str(k.as_str()), v.clone())?;
                }
            }
            Value::Int(_) | Value::Uint8(_) => {
                let n = val.as_i64().unwrap_or(0);
                if b.pipe.decl.len() > 1 {
                    return self.errorf(format!(
                        "can't use {} to iterate over more than one variable",
                        sprint_value(&val)
                    ));
                }
                for i in 0..n.max(0) {
                    ran = true;
                    self.one_iteration(b, mark, Value::Int(i), Value::Int(i))?;
                }
            }
            Value::Invalid | Value::NilIface => {}
            v => {
                let shown = sprint_value(v);
                let shown = shown.strip_prefix('&').unwrap_or(&shown).to_string();
                return self.errorf(format!("range can't iterate over {shown}"));
            }
        }
        if !ran {
            if let Some(e) = &b.else_list {
                return self.walk_list(dot, e);
            }
        }
        Ok(())
    }

    fn one_iteration(&mut self, b: &'t Branch, mark: usize, index: Value, elem: Value) -> R<()> {
        self.step()?;
        let decl = &b.pipe.decl;
        if !decl.is_empty() {
            if b.pipe.is_assign {
                if decl.len() > 1 {
                    self.set_var(&decl[0].1, index.clone())?;
                } else {
                    self.set_var(&decl[0].1, elem.clone())?;
                }
            } else {
                self.set_top_var(1, elem.clone());
            }
        }
        if decl.len() > 1 {
            if b.pipe.is_assign {
                self.set_var(&decl[1].1, elem.clone())?;
            } else {
                self.set_top_var(2, index);
            }
        }
        let r = self.walk_list(&elem, &b.list);
        self.vars.truncate(mark);
        match r {
            Err(Flow::Continue) => Ok(()),
            r => r,
        }
    }

    fn walk_template(&mut self, dot: &Value, t: &'t TemplateCall) -> R<()> {
        self.at = Some(At::Template(t));
        let Some((key, tree)) = self.trees.get_key_value(&t.name) else {
            return self.errorf(format!("template {} not defined", quote(&t.name)));
        };
        if self.depth >= MAX_TEMPLATE_DEPTH {
            return self.errorf(format!(
                "exceeded maximum template depth ({MAX_TEMPLATE_DEPTH})"
            ));
        }
        let new_dot = match &t.pipe {
            Some(p) => self.eval_pipeline(dot, p)?,
            None => Value::Invalid,
        };
        let saved_vars = std::mem::replace(&mut self.vars, vec![("$", new_dot.clone())]);
        let saved_name = std::mem::replace(&mut self.tmpl_name, key);
        self.depth += 1;
        let r = self.walk_list(&new_dot, tree);
        self.depth -= 1;
        self.tmpl_name = saved_name;
        self.vars = saved_vars;
        r
    }

    fn set_var(&mut self, name: &str, v: Value) -> R<()> {
        for (n, slot) in self.vars.iter_mut().rev() {
            if *n == name {
                *slot = v;
                return Ok(());
            }
        }
        self.errorf(format!("undefined variable: {name}"))
    }

    fn set_top_var(&mut self, n: usize, v: Value) {
        let len = self.vars.len();
        if let Some(slot) = len.checked_sub(n).and_then(|i| self.vars.get_mut(i)) {
            slot.1 = v;
        }
    }

    fn var_value(&self, name: &str) -> R<Value> {
        for (n, v) in self.vars.iter().rev() {
            if *n == name {
                return Ok(v.clone());
            }
        }
        self.errorf(format!("undefined variable: {name}"))
    }

    fn eval_pipeline(&mut self, dot: &Value, pipe: &'t Pipe) -> R<Value> {
        self.enter()?;
        let r = self.eval_pipeline_inner(dot, pipe);
        self.recursion -= 1;
        r
    }

    fn eval_pipeline_inner(&mut self, dot: &Value, pipe: &'t Pipe) -> R<Value> {
        self.at = Some(At::Pipe(pipe));
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            self.step()?;
            let v = self.eval_command(dot, cmd, value.take())?;
            // A nil interface{} is no value (Go's "lovely!" unwrapping).
            value = Some(v.indirect_iface());
        }
        let value = value.unwrap_or(Value::Invalid);
        for (_, var) in &pipe.decl {
            if pipe.is_assign {
                self.set_var(var, value.clone())?;
            } else {
                self.vars.push((var.as_str(), value.clone()));
            }
        }
        Ok(value)
    }

    fn not_a_function(&self, args: &[Arg], fin: &Option<Value>) -> R<()> {
        if args.len() > 1 || fin.is_some() {
            return self.errorf(format!(
                "can't give argument to non-function {}",
                args[0].string()
            ));
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &Value, cmd: &'t Command, fin: Option<Value>) -> R<Value> {
        let first = &cmd.args[0];
        match first {
            Arg::Field { .. } => return self.eval_field_node(dot, first, Some(&cmd.args), fin),
            Arg::Chain { .. } => return self.eval_chain_node(dot, first, Some(&cmd.args), fin),
            Arg::Identifier { .. } => {
                return self.eval_function(dot, first, At::Cmd(cmd), Some(&cmd.args), fin)
            }
            Arg::Pipe(p) => {
                self.not_a_function(&cmd.args, &fin)?;
                return self.eval_pipeline(dot, p);
            }
            Arg::Variable { .. } => {
                return self.eval_variable_node(dot, first, Some(&cmd.args), fin)
            }
            _ => {}
        }
        self.at = Some(At::Arg(first));
        self.not_a_function(&cmd.args, &fin)?;
        match first {
            Arg::Bool { val, .. } => Ok(Value::Bool(*val)),
            Arg::Dot { .. } => Ok(dot.clone()),
            Arg::Nil { .. } => self.errorf("nil is not a command"),
            Arg::Number { .. } => self.ideal_constant(first),
            Arg::String { text, .. } => Ok(Value::str(text.as_str())),
            _ => self.errorf(format!("can't evaluate command {}", quote(&first.string()))),
        }
    }

    fn ideal_constant(&mut self, n: &'t Arg) -> R<Value> {
        self.at = Some(At::Arg(n));
        let Arg::Number { num, .. } = n else {
            return Ok(Value::Invalid);
        };
        let t = &num.text;
        let is_hex_int = t.len() > 2
            && t.starts_with('0')
            && (t.as_bytes()[1] == b'x' || t.as_bytes()[1] == b'X')
            && !t.contains(['p', 'P']);
        let is_rune = t.starts_with('\'');
        if let Some(f) = num.float {
            if !is_hex_int && !is_rune && t.contains(['.', 'e', 'E', 'p', 'P']) {
                return Ok(Value::Float(f));
            }
        }
        if let Some(i) = num.int {
            return Ok(Value::Int(i));
        }
        if num.uint.is_some() {
            return self.errorf(format!("{t} overflows int"));
        }
        Ok(Value::Invalid)
    }

    fn eval_field_node(
        &mut self,
        dot: &Value,
        field: &'t Arg,
        args: Option<&'t [Arg]>,
        fin: Option<Value>,
    ) -> R<Value> {
        self.at = Some(At::Arg(field));
        let Arg::Field { idents, .. } = field else {
            return Ok(Value::Invalid);
        };
        self.eval_field_chain(dot, dot.clone(), At::Arg(field), idents, args, fin)
    }

    fn eval_chain_node(
        &mut self,
        dot: &Value,
        chain: &'t Arg,
        args: Option<&'t [Arg]>,
        fin: Option<Value>,
    ) -> R<Value> {
        self.at = Some(At::Arg(chain));
        let Arg::Chain { node, fields, .. } = chain else {
            return Ok(Value::Invalid);
        };
        if let Arg::Nil { .. } = node.as_ref() {
            return self.errorf(format!(
                "indirection through explicit nil in {}",
                chain.string()
            ));
        }
        let pipe = self.eval_arg(dot, ParamTy::Untyped, node)?;
        self.eval_field_chain(dot, pipe, At::Arg(chain), fields, args, fin)
    }

    fn eval_variable_node(
        &mut self,
        dot: &Value,
        var: &'t Arg,
        args: Option<&'t [Arg]>,
        fin: Option<Value>,
    ) -> R<Value> {
        self.at = Some(At::Arg(var));
        let Arg::Variable { idents, .. } = var else {
            return Ok(Value::Invalid);
        };
        let value = self.var_value(&idents[0])?;
        if idents.len() == 1 {
            self.not_a_function(args.unwrap_or(&[]), &fin)?;
            return Ok(value);
        }
        self.eval_field_chain(dot, value, At::Arg(var), &idents[1..], args, fin)
    }

    fn eval_field_chain(
        &mut self,
        dot: &Value,
        receiver: Value,
        node: At<'t>,
        idents: &'t [String],
        args: Option<&'t [Arg]>,
        fin: Option<Value>,
    ) -> R<Value> {
        let n = idents.len();
        let mut recv = receiver;
        let mut iface = false;
        for ident in &idents[..n - 1] {
            (recv, iface) = self.eval_field(dot, ident, node, None, None, recv, iface)?;
        }
        self.eval_field(dot, &idents[n - 1], node, args, fin, recv, iface)
            .map(|(v, _)| v)
    }

    /// One `.Field` step; also says whether the result's static type is `interface{}`
    /// (a value out of an `args` map), which Go's error messages then name.
    #[allow(clippy::too_many_arguments)]
    fn eval_field(
        &mut self,
        dot: &Value,
        name: &'t str,
        node: At<'t>,
        args: Option<&'t [Arg]>,
        fin: Option<Value>,
        receiver: Value,
        iface: bool,
    ) -> R<(Value, bool)> {
        match &receiver {
            Value::Invalid => return Ok((Value::Invalid, false)),
            Value::NilIface => {
                return self.errorf(format!("nil pointer evaluating interface {{}}.{name}"))
            }
            _ => {}
        }
        let typ = if iface {
            "interface {}"
        } else {
            receiver.type_name()
        };
        if let Some(m) = Method::of(&receiver, name) {
            let v = self.eval_call(
                dot,
                Callee::Method(m, receiver.clone()),
                node,
                name,
                args,
                fin,
            )?;
            return Ok((v, false));
        }
        let has_args = args.is_some_and(|a| a.len() > 1) || fin.is_some();
        let field = match &receiver {
            Value::Alert(a) => match name {
                "Labels" => Some(Value::StrMap(a.labels.clone())),
                "ExternalLabels" => Some(Value::StrMap(a.external_labels.clone())),
                "ExternalURL" => Some(Value::Str(a.external_url.clone())),
                "Value" => Some(Value::Float(a.value)),
                _ => None,
            },
            Value::Sample(s) => match name {
                "Labels" => Some(Value::StrMap(s.labels.clone())),
                "Value" => Some(Value::Float(s.value)),
                _ => None,
            },
            Value::Time(_) if matches!(name, "wall" | "ext" | "loc") => {
                return self.errorf(format!(
                    "{name} is an unexported field of struct type {typ}"
                ));
            }
            Value::StrMap(m) => {
                if has_args {
                    return self.errorf(format!("{name} is not a method but has arguments"));
                }
                let v = m.get(name).map_or("", String::as_str);
                return Ok((Value::str(v), false));
            }
            Value::AnyMap(m) => {
                if has_args {
                    return self.errorf(format!("{name} is not a method but has arguments"));
                }
                return Ok((m.get(name).cloned().unwrap_or(Value::NilIface), true));
            }
            _ => None,
        };
        if let Some(f) = field {
            if has_args {
                return self.errorf(format!(
                    "{name} has arguments but cannot be invoked as function"
                ));
            }
            return Ok((f, false));
        }
        self.errorf(format!("can't evaluate field {name} in type {typ}"))
    }

    fn eval_function(
        &mut self,
        dot: &Value,
        ident: &'t Arg,
        node: At<'t>,
        args: Option<&'t [Arg]>,
        fin: Option<Value>,
    ) -> R<Value> {
        self.at = Some(At::Arg(ident));
        let Arg::Identifier { name, .. } = ident else {
            return Ok(Value::Invalid);
        };
        let Some(f) = Func::lookup(name) else {
            return self.errorf(format!("{} is not a defined function", quote(name)));
        };
        self.eval_call(dot, Callee::Func(f), node, name, args, fin)
    }

    fn eval_call(
        &mut self,
        dot: &Value,
        callee: Callee,
        node: At<'t>,
        name: &str,
        args: Option<&'t [Arg]>,
        fin: Option<Value>,
    ) -> R<Value> {
        let args: &'t [Arg] = args.map_or(&[], |a| &a[1..]);
        let (fixed, variadic) = callee.signature();
        let num_in = args.len() + usize::from(fin.is_some());
        let num_fixed = if variadic.is_some() {
            if num_in < fixed.len() {
                return self.errorf(format!(
                    "wrong number of args for {name}: want at least {} got {}",
                    fixed.len(),
                    args.len()
                ));
            }
            fixed.len()
        } else {
            if num_in != fixed.len() {
                return self.errorf(format!(
                    "wrong number of args for {name}: want {} got {num_in}",
                    fixed.len()
                ));
            }
            args.len()
        };
        if let Callee::Func(f @ (Func::And | Func::Or)) = callee {
            let want = f == Func::Or;
            let mut v = Value::Invalid;
            for a in args {
                v = self.eval_arg(dot, ParamTy::Reflect, a)?;
                if v.clone().indirect_iface().truth() == want {
                    return Ok(v);
                }
            }
            if let Some(fin) = fin {
                v = fin;
            }
            return Ok(v);
        }
        let mut argv = Vec::with_capacity(num_in);
        let mut i = 0;
        while i < num_fixed && i < args.len() {
            argv.push(self.eval_arg(dot, fixed[i], &args[i])?);
            i += 1;
        }
        if let Some(vt) = variadic {
            while i < args.len() {
                argv.push(self.eval_arg(dot, vt, &args[i])?);
                i += 1;
            }
        }
        if let Some(fin) = fin {
            let t = match variadic {
                Some(vt) if num_in > num_fixed => vt,
                _ => fixed[num_in - 1],
            };
            argv.push(self.validate_type(fin, t)?);
        }
        if let Callee::Func(Func::Query) = callee {
            // A query costs far more than a step; count it so loops of queries end early.
            self.steps += 1000;
            self.step()?;
        }
        match funcs::call(&callee, argv, self.env) {
            Ok(v) => {
                if let Value::Str(s) | Value::Html(s) = &v {
                    if s.len() > MAX_OUTPUT_BYTES {
                        self.at = Some(node);
                        return self.errorf(format!(
                            "{name} returned more than {MAX_OUTPUT_BYTES} bytes; make the template build shorter strings"
                        ));
                    }
                }
                Ok(v)
            }
            Err(e) => {
                self.at = Some(node);
                self.errorf(format!("error calling {name}: {e}"))
            }
        }
    }

    fn eval_arg(&mut self, dot: &Value, ty: ParamTy, n: &'t Arg) -> R<Value> {
        self.at = Some(At::Arg(n));
        let v = match n {
            Arg::Dot { .. } => dot.clone(),
            Arg::Nil { .. } => {
                return match ty {
                    ParamTy::Str => self.errorf("cannot assign nil to string"),
                    ParamTy::Any => Ok(Value::NilIface),
                    ParamTy::Samples => Ok(Value::Samples(Rc::new(Vec::new()))),
                    ParamTy::Reflect | ParamTy::Sample | ParamTy::Untyped => Ok(Value::Invalid),
                }
            }
            Arg::Field { .. } => {
                self.eval_field_node(dot, n, Some(std::slice::from_ref(n)), None)?
            }
            Arg::Variable { .. } => self.eval_variable_node(dot, n, None, None)?,
            Arg::Pipe(p) => self.eval_pipeline(dot, p)?,
            Arg::Identifier { .. } => self.eval_function(dot, n, At::Arg(n), None, None)?,
            Arg::Chain { .. } => self.eval_chain_node(dot, n, None, None)?,
            Arg::Bool { val, .. } => {
                return match ty {
                    ParamTy::Any | ParamTy::Reflect | ParamTy::Untyped => Ok(Value::Bool(*val)),
                    ParamTy::Str => self.errorf(format!("expected string; found {}", n.string())),
                    t => self.errorf(format!(
                        "can't handle {} for arg of type {}",
                        n.string(),
                        t.go_type()
                    )),
                }
            }
            Arg::Number { .. } => {
                return match ty {
                    ParamTy::Any | ParamTy::Reflect | ParamTy::Untyped => self.ideal_constant(n),
                    ParamTy::Str => self.errorf(format!("expected string; found {}", n.string())),
                    t => self.errorf(format!(
                        "can't handle {} for arg of type {}",
                        n.string(),
                        t.go_type()
                    )),
                }
            }
            Arg::String { text, .. } => {
                return match ty {
                    ParamTy::Sample | ParamTy::Samples => self.errorf(format!(
                        "can't handle {} for arg of type {}",
                        n.string(),
                        ty.go_type()
                    )),
                    _ => Ok(Value::str(text.as_str())),
                }
            }
        };
        self.validate_type(v, ty)
    }

    fn validate_type(&mut self, v: Value, ty: ParamTy) -> R<Value> {
        match ty {
            ParamTy::Untyped | ParamTy::Reflect => Ok(v),
            ParamTy::Any => Ok(match v {
                Value::Invalid => Value::NilIface,
                v => v,
            }),
            ParamTy::Str => match v {
                Value::Str(_) => Ok(v),
                Value::Invalid => self.errorf("invalid value; expected string"),
                v => self.errorf(format!(
                    "wrong type for value; expected string; got {}",
                    v.type_name()
                )),
            },
            ParamTy::Sample => match v {
                Value::Sample(_) | Value::Invalid => Ok(v),
                v => self.errorf(format!(
                    "wrong type for value; expected *template.sample; got {}",
                    v.type_name()
                )),
            },
            ParamTy::Samples => match v {
                Value::Samples(_) => Ok(v),
                Value::Invalid => Ok(Value::Samples(Rc::new(Vec::new()))),
                v => self.errorf(format!(
                    "wrong type for value; expected template.queryResult; got {}",
                    v.type_name()
                )),
            },
        }
    }
}
