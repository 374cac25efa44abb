package codegen

import (
	"fmt"
	"strconv"

	"google.golang.org/protobuf/compiler/protogen"
)

// service writes one service: names, handler interface, Unimplemented
// struct, registration, client and request-tree constructors.
func (fg *fileGen) service(s *protogen.Service) {
	g := fg.g
	svc := s.GoName
	full := string(s.Desc.FullName())
	methods := make([]method, len(s.Methods))
	for i, m := range s.Methods {
		methods[i], _ = fg.methodInfo(m) // checked by check
	}
	ctx := fg.ident(contextPkg, "Context")

	g.P("// ", svc, "ServiceName is the full name of the ", full, " service.")
	g.P("const ", svc, "ServiceName = ", strconv.Quote(full))
	g.P()
	if len(methods) > 0 {
		g.P("// The function ids of ", full, "'s methods: their gRPC procedure names,")
		g.P("// which the HTTP bridge serves them at too.")
		g.P("const (")
		for _, mi := range methods {
			m := mi.m
			g.P("// ", svc, m.GoName, "Procedure is the function id of ", svc, ".", m.Desc.Name(), ".")
			g.P(svc, m.GoName, "Procedure = ", strconv.Quote("/"+full+"/"+string(m.Desc.Name())))
		}
		g.P(")")
		g.P()
	}
	var cached []method
	for _, mi := range methods {
		if mi.cacheSuffix != "" {
			cached = append(cached, mi)
		}
	}
	if len(cached) > 0 {
		g.P("// The ids request trees name cached methods by: the procedure with the caching")
		g.P("// level (arbor.v1.cache) as suffix. Register", svc, "Handler registers these too.")
		g.P("const (")
		for _, mi := range cached {
			m := mi.m
			g.P("// ", svc, m.GoName, "TreeID names ", svc, ".", m.Desc.Name(), " in request trees (", mi.cacheSuffix[1:], ").")
			g.P(svc, m.GoName, "TreeID = ", svc, m.GoName, "Procedure + ", strconv.Quote(mi.cacheSuffix))
		}
		g.P(")")
		g.P()
	}

	// The handler interface.
	fg.comments(s.Comments.Leading, deprecated(s.Desc),
		svc+"Handler is the server side of the "+full+" service.")
	g.P("//")
	g.P("// Implement it (embedding Unimplemented", svc, "Handler) and register it with")
	g.P("// Register", svc, "Handler.")
	g.P("type ", svc, "Handler interface {")
	for _, mi := range methods {
		m := mi.m
		fg.comments(m.Comments.Leading, deprecated(m.Desc))
		g.P(m.GoName, fg.handlerSignature(mi, ctx))
	}
	g.P("}")
	g.P()

	// Unimplemented.
	g.P("// Unimplemented", svc, "Handler answers every method with Unimplemented. Embed it")
	g.P("// in implementations so that methods added to the service later still compile,")
	g.P("// answering Unimplemented until implemented.")
	g.P("type Unimplemented", svc, "Handler struct{}")
	g.P()
	for _, mi := range methods {
		m := mi.m
		g.P("// ", m.GoName, " answers Unimplemented.")
		g.P("func (Unimplemented", svc, "Handler) ", m.GoName, fg.handlerSignature(mi, ctx), " {")
		errExpr := fg.ident(arborPkg, "Errorf") + "(" + fg.ident(arborPkg, "Unimplemented") + ", \"%s is not implemented\", " + svc + m.GoName + "Procedure)"
		switch mi.kind {
		case "unary", "client":
			g.P("return nil, ", errExpr)
		default:
			g.P("return ", errExpr)
		}
		g.P("}")
		g.P()
	}

	fg.register(s, methods, ctx)
	fg.client(s, methods, ctx)
	fg.nodes(s, methods)
}

// handlerSignature is a handler method's parameters and results.
func (fg *fileGen) handlerSignature(mi method, ctx string) string {
	m := mi.m
	sender := fg.ident(arborPkg, "Sender")
	receiver := fg.ident(arborPkg, "Receiver")
	switch mi.kind {
	case "server":
		return "(ctx " + ctx + ", req " + fg.goType(m.Input) + ", out *" + sender + "[" + fg.wireType(m.Output) + "]) error"
	case "client":
		return "(ctx " + ctx + ", in *" + receiver + "[" + fg.wireType(m.Input) + "]) (" + fg.goType(m.Output) + ", error)"
	case "bidi":
		return "(ctx " + ctx + ", in *" + receiver + "[" + fg.wireType(m.Input) + "], out *" + sender + "[" + fg.wireType(m.Output) + "]) error"
	}
	return "(ctx " + ctx + ", req " + fg.goType(m.Input) + ") (" + fg.goType(m.Output) + ", error)"
}

// register writes Register…Handler.
func (fg *fileGen) register(s *protogen.Service, methods []method, ctx string) {
	g := fg.g
	svc := s.GoName
	registrar := fg.ident(arborPkg, "Registrar")
	handleOption := fg.ident(arborPkg, "HandleOption")
	r, impl, opts, sd, err := fg.name("r"), fg.name("impl"), fg.name("opts"), fg.name("sd"), fg.name("err")
	cv, req, in, out, res := fg.name("ctx"), fg.name("req"), fg.name("in"), fg.name("out"), fg.name("res")
	g.P("// Register", svc, "Handler registers impl's methods on r (an *arbor.Server, or an")
	g.P("// *arbor.Service to pass as a capability), each as the function its procedure")
	g.P("// names, with the options the .proto gives (idempotency_level NO_SIDE_EFFECTS or")
	g.P("// IDEMPOTENT: arbor.Idempotent; arbor.v1.cache: also registered under its TreeID)")
	g.P("// and then opts. On a server it also enables ", fg.ident(arborprotoPkg, "SchemaFunction"), ", which")
	g.P("// describes the methods' messages to clients with no .proto at hand.")
	g.P("func Register", svc, "Handler(", r, " ", registrar, ", ", impl, " ", svc, "Handler, ", opts, " ...", handleOption, ") error {")
	g.P("if ", err, " := ", fg.ident(arborprotoPkg, "EnableSchema"), "(", r, "); ", err, " != nil {")
	g.P("return ", err)
	g.P("}")
	if len(methods) > 0 {
		g.P(sd, " := ", g.QualifiedGoIdent(fg.f.GoDescriptorIdent), ".Services().ByName(", strconv.Quote(string(s.Desc.Name())), ")")
	}
	for _, mi := range methods {
		m := mi.m
		fromProto := ""
		if mi.idempotent {
			fromProto = ", " + fg.ident(arborPkg, "Idempotent") + "()"
		}
		optsExpr := fg.ident(arborprotoPkg, "Options") + "(" + sd + ", " + strconv.Quote(string(m.Desc.Name())) + ", " + opts + fromProto + ")..."
		fn := impl + "." + m.GoName
		inMsg, outMsg := m.Input, m.Output
		var call string
		switch mi.kind {
		case "unary":
			if !fg.local(inMsg) || !fg.local(outMsg) {
				fn = fmt.Sprintf("func(%s %s, %s %s) (%s, error) {\n%s, %s := %s.%s(%s, %s)\nreturn %s, %s\n}",
					cv, ctx, req, fg.wireType(inMsg), fg.wireType(outMsg), res, err, impl, m.GoName, cv, fg.unwrap(inMsg, req), fg.wrap(outMsg, res), err)
			}
			call = fg.ident(arborPkg, "Handle1")
		case "server":
			if !fg.local(inMsg) {
				fn = fmt.Sprintf("func(%s %s, %s %s, %s *%s[%s]) error {\nreturn %s.%s(%s, %s.Msg, %s)\n}",
					cv, ctx, req, fg.wireType(inMsg), out, fg.ident(arborPkg, "Sender"), fg.wireType(outMsg), impl, m.GoName, cv, req, out)
			}
			call = fg.ident(arborPkg, "HandleServerStream")
		case "client":
			if !fg.local(outMsg) {
				fn = fmt.Sprintf("func(%s %s, %s *%s[%s]) (%s, error) {\n%s, %s := %s.%s(%s, %s)\nreturn %s, %s\n}",
					cv, ctx, in, fg.ident(arborPkg, "Receiver"), fg.wireType(inMsg), fg.wireType(outMsg), res, err, impl, m.GoName, cv, in, fg.wrap(outMsg, res), err)
			}
			call = fg.ident(arborPkg, "HandleClientStream")
		case "bidi":
			call = fg.ident(arborPkg, "HandleBidiStream")
		}
		ids := []string{svc + m.GoName + "Procedure"}
		if mi.cacheSuffix != "" {
			ids = append(ids, svc+m.GoName+"TreeID")
		}
		if len(ids) > 1 && fn != impl+"."+m.GoName {
			v := fg.name("fn" + m.GoName)
			g.P(v, " := ", fn)
			fn = v
		}
		for _, id := range ids {
			g.P("if ", err, " := ", call, "(", r, ", ", id, ", ", fn, ", ", optsExpr, "); ", err, " != nil {")
			g.P("return ", err)
			g.P("}")
		}
	}
	g.P("return nil")
	g.P("}")
	g.P()
}

// unwrap is the expression that turns v (of m's wire type) into a *M.
func (fg *fileGen) unwrap(m *protogen.Message, v string) string {
	if fg.local(m) {
		return v
	}
	return v + ".Msg"
}

// client writes the client type and its methods.
func (fg *fileGen) client(s *protogen.Service, methods []method, ctx string) {
	g := fg.g
	svc := s.GoName
	full := string(s.Desc.FullName())
	caller := fg.ident(arborPkg, "Caller")
	promise := fg.ident(arborPkg, "Promise")
	x, cv, req, res, err := fg.name("x"), fg.name("ctx"), fg.name("req"), fg.name("res"), fg.name("err")
	g.P("// ", svc, "Client calls the ", full, " service through an arbor.Caller: an")
	g.P("// *arbor.Client, a cluster client or an *arbor.Ref, with its interceptors and")
	g.P("// options.")
	g.P("type ", svc, "Client struct {")
	g.P("c ", caller)
	g.P("}")
	g.P()
	g.P("// New", svc, "Client returns a client of ", full, " calling through c.")
	g.P("func New", svc, "Client(c ", caller, ") *", svc, "Client {")
	g.P("return &", svc, "Client{c: c}")
	g.P("}")
	g.P()
	for _, mi := range methods {
		m := mi.m
		proc := svc + m.GoName + "Procedure"
		in, out := m.Input, m.Output
		recv := "func (" + x + " *" + svc + "Client) "
		dep := deprecated(m.Desc)
		switch mi.kind {
		case "unary":
			fg.comments(m.Comments.Leading, dep, m.GoName+" calls "+svc+"."+string(m.Desc.Name())+".")
			g.P(recv, m.GoName, "(", cv, " ", ctx, ", ", req, " ", fg.goType(in), ") (", fg.goType(out), ", error) {")
			if fg.local(out) {
				g.P("return ", fg.ident(arborPkg, "Call1"), "[", fg.wireType(out), "](", cv, ", ", x, ".c, ", proc, ", ", fg.wrap(in, req), ")")
			} else {
				g.P(res, ", ", err, " := ", fg.ident(arborPkg, "Call1"), "[", fg.wireType(out), "](", cv, ", ", x, ".c, ", proc, ", ", fg.wrap(in, req), ")")
				g.P("return ", res, ".Msg, ", err)
			}
			g.P("}")
			g.P()
			g.P("// Go", m.GoName, " sends ", svc, ".", m.Desc.Name(), " without waiting and returns the promise of its")
			g.P("// result: Wait for it, or pass it to a Then… method to pipeline a dependent")
			g.P("// call in the same round trip.")
			if dep {
				g.P("//")
				g.P("// Deprecated: do not use.")
			}
			g.P(recv, "Go", m.GoName, "(", cv, " ", ctx, ", ", req, " ", fg.goType(in), ") *", promise, "[", fg.wireType(out), "] {")
			g.P("return ", fg.ident(arborPkg, "Go1"), "[", fg.wireType(out), "](", cv, ", ", x, ".c, ", proc, ", ", fg.wrap(in, req), ")")
			g.P("}")
			g.P()
			g.P("// Then", m.GoName, " calls ", svc, ".", m.Desc.Name(), " on the result of another call before it")
			g.P("// arrives: the server substitutes it, so the chain costs one round trip.")
			if dep {
				g.P("//")
				g.P("// Deprecated: do not use.")
			}
			g.P(recv, "Then", m.GoName, "(", cv, " ", ctx, ", ", req, " *", promise, "[", fg.wireType(in), "]) *", promise, "[", fg.wireType(out), "] {")
			g.P("return ", fg.ident(arborPkg, "Go1"), "[", fg.wireType(out), "](", cv, ", ", x, ".c, ", proc, ", ", req, ")")
			g.P("}")
			g.P()
		case "server":
			fg.comments(m.Comments.Leading, dep, m.GoName+" calls "+svc+"."+string(m.Desc.Name())+": read the stream until io.EOF, or Close it.")
			g.P(recv, m.GoName, "(", cv, " ", ctx, ", ", req, " ", fg.goType(in), ") (*", fg.ident(arborPkg, "ServerStream"), "[", fg.wireType(out), "], error) {")
			g.P("return ", fg.ident(arborPkg, "CallServerStream"), "[", fg.wireType(out), "](", cv, ", ", x, ".c, ", proc, ", ", fg.wrap(in, req), ")")
			g.P("}")
			g.P()
		case "client":
			fg.comments(m.Comments.Leading, dep, m.GoName+" opens "+svc+"."+string(m.Desc.Name())+": Send messages, then CloseAndRecv.")
			g.P(recv, m.GoName, "(", cv, " ", ctx, ") (*", fg.ident(arborPkg, "ClientStream"), "[", fg.wireType(out), ", ", fg.wireType(in), "], error) {")
			g.P("return ", fg.ident(arborPkg, "OpenClientStream"), "[", fg.wireType(out), ", ", fg.wireType(in), "](", cv, ", ", x, ".c, ", proc, ")")
			g.P("}")
			g.P()
		case "bidi":
			fg.comments(m.Comments.Leading, dep, m.GoName+" opens "+svc+"."+string(m.Desc.Name())+": Send and Recv independently.")
			g.P(recv, m.GoName, "(", cv, " ", ctx, ") (*", fg.ident(arborPkg, "BidiStream"), "[", fg.wireType(out), ", ", fg.wireType(in), "], error) {")
			g.P("return ", fg.ident(arborPkg, "OpenBidiStream"), "[", fg.wireType(out), ", ", fg.wireType(in), "](", cv, ", ", x, ".c, ", proc, ")")
			g.P("}")
			g.P()
		}
	}
}

// nodes writes a request-tree constructor per unary method.
func (fg *fileGen) nodes(s *protogen.Service, methods []method) {
	g := fg.g
	svc := s.GoName
	node := fg.ident(requestPkg, "Node")
	tp, req, arg, mv, ok := fg.name("R"), fg.name("req"), fg.name("arg"), fg.name("m"), fg.name("ok")
	for _, mi := range methods {
		if mi.kind != "unary" {
			continue
		}
		m := mi.m
		id := svc + m.GoName + "Procedure"
		level := ""
		if mi.cacheSuffix != "" {
			id = svc + m.GoName + "TreeID"
			level = " at its caching level (" + mi.cacheSuffix[1:] + ")"
		}
		g.P("// ", svc, m.GoName, "Node returns a request-tree node calling ", svc, ".", m.Desc.Name(), level, ":")
		g.P("// req is the request, or a subrequest whose result is one. Resolve it with")
		g.P("// tree.Resolve[", fg.wireType(m.Output), "], or use it in a larger tree.")
		g.P("func ", svc, m.GoName, "Node[", tp, " ", fg.goType(m.Input), " | *", node, "](", req, " ", tp, ") *", node, " {")
		if fg.local(m.Input) {
			g.P("return ", fg.ident(requestPkg, "New"), "(", id, ", ", req, ")")
		} else {
			g.P("var ", arg, " any = ", req)
			g.P("if ", mv, ", ", ok, " := ", arg, ".(", fg.goType(m.Input), "); ", ok, " {")
			g.P(arg, " = ", fg.wrap(m.Input, mv))
			g.P("}")
			g.P("return ", fg.ident(requestPkg, "New"), "(", id, ", ", arg, ")")
		}
		g.P("}")
		g.P()
	}
}
