package config

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/cpuguy83/go-md2man/v2/md2man"
	"github.com/spf13/pflag"
)

// ManPage renders stmfd(8) from the flag definitions, so the page lists
// exactly the settings Load accepts.
func ManPage() []byte { return md2man.Render(manMarkdown()) }

func manMarkdown() []byte {
	var b bytes.Buffer
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("%% stmfd 8\n\n# NAME\n\nstmfd - costar SCSI target daemon (COMSTAR for Linux)\n\n")
	w("# SYNOPSIS\n\n**stmfd** [*OPTIONS*]\n\n")
	w("# DESCRIPTION\n\n")
	w("**stmfd** serves logical units over iSCSI the way illumos COMSTAR does. It restores its persisted ")
	w("configuration (LUs, host and target groups, views, targets, portal groups) from the state directory, ")
	w("then opens the portals of the default portal group and of every portal group a target is bound to, ")
	w("then serves the management API that **stmfadm**(8), **sbdadm**(8) and **itadm**(8) use.\n\n")
	w("Under systemd (Type=notify) it reports READY=1 once the state is restored and every portal listens, ")
	w("pings the watchdog while its iSCSI server answers, and reports STOPPING=1 on shutdown.\n\n")
	w("# OPTIONS\n\n")
	w("Every option can also be set as the environment variable STMFD_*NAME* (upper case, dashes become ")
	w("underscores) or as the key *name* in the config file. Flags win over the environment, which wins over the file.\n\n")
	newFlagSet(io.Discard).VisitAll(func(f *pflag.Flag) {
		typ, usage := pflag.UnquoteUsage(f)
		w("**--%s**", f.Name)
		if typ != "" {
			w(" *%s*", typ)
		}
		w("\n: %s", strings.TrimSuffix(usage, "."))
		if f.DefValue != "" && f.DefValue != "[]" && f.DefValue != "false" {
			w(" (default: %s)", strings.Trim(f.DefValue, "[]"))
		}
		w(". Environment: %s.\n\n", envName(f.Name))
	})
	w("# CONFIGURATION FILE\n\n")
	w("YAML, TOML or JSON, named by **--config** (installed: */etc/stmfd/stmfd.yaml*), with the option names as keys:\n\n")
	w("```\nstate-dir: /var/lib/stmfd\nportal:\n  - 10.0.0.5:3260\n  - 10.0.1.5:3260\nlog-level: info\n```\n\n")
	w("The **fc** section (file only) lists Fibre Channel adapters in target mode: **fc.adapters**, each with ")
	w("**kind** (**fcoe**: software FCoE, VN2VN), **interface**, and optionally **port-wwn**, **node-wwn**, ")
	w("**beacon-seconds** and **port-group**. A reload reports a change here as needing a restart.\n\n")
	w("An unknown key is an error, so a typo is never ignored.\n\n")
	w("# SIGNALS\n\n")
	w("**SIGHUP** (**systemctl reload stmfd**)\n: Re-read the config file (flags and STMFD_* variables still win over it). ")
	w("Applied live: ")
	for i, s := range liveKeys() {
		if i > 0 {
			w(", ")
		}
		w("**%s**", s)
	}
	w(". Portals of the default portal group are opened and closed without touching sessions on unchanged ")
	w("portals; sessions that came in through a removed portal are closed. A portal that cannot listen leaves the ")
	w("portals as they were. Any other change is logged as needing a restart. An invalid file changes nothing.\n\n")
	w("**SIGTERM**, **SIGINT**\n: Shut down cleanly: stop accepting connections, ask initiators to log out, let ")
	w("in-flight commands complete (bounded by **--shutdown-timeout**), close sessions, flush and close the LUs.\n\n")
	w("# FILES\n\n")
	w("*/etc/stmfd/stmfd.yaml*\n: config file of the installed service\n\n")
	w("*/var/lib/stmfd/stmf.json*\n: persisted configuration, replaced atomically on every change\n\n")
	w("*/var/lib/stmfd/stmfd.sock*\n: management API socket (root only)\n\n")
	w("# SEE ALSO\n\n**stmfadm**(8), **sbdadm**(8), **itadm**(8), **systemd.service**(5)\n")
	return b.Bytes()
}

// liveKeys lists the settings a reload applies.
func liveKeys() []string {
	var out []string
	for _, s := range settings() {
		if s.live {
			out = append(out, s.key)
		}
	}
	return out
}
