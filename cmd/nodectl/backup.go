package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"filippo.io/age"
	"golang.org/x/term"

	"github.com/nodebake/nodebake/internal/atomicfile"
	"github.com/nodebake/nodebake/internal/firstboot"
	"github.com/nodebake/nodebake/internal/identity"
)

// listFlag is a flag that may be given more than once.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func backupCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("nodectl backup", flag.ContinueOnError)
	out := fs.String("o", "", "write the encrypted archive to this file (required)")
	passFile := fs.String("passphrase-file", "", "read the passphrase from the first line of this file instead of the terminal")
	var recips listFlag
	fs.Var(&recips, "r", "encrypt to this age recipient (age1…) instead of a passphrase; may be repeated")
	root := fs.String("root", "/", "the root filesystem to back up")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		return errors.New("usage: nodectl backup -o FILE [--passphrase-file FILE | -r age1…]")
	}
	if *root == "/" && os.Geteuid() != 0 {
		return errors.New("must run as root (the keys are root's and the services'): sudo nodectl backup -o FILE")
	}
	var rs []age.Recipient
	if len(recips) > 0 {
		if *passFile != "" {
			return errors.New("give either -r or --passphrase-file, not both")
		}
		for _, r := range recips {
			x, err := age.ParseX25519Recipient(r)
			if err != nil {
				return fmt.Errorf("-r %s: %w", r, err)
			}
			rs = append(rs, x)
		}
	} else {
		pass, err := passphrase(*passFile, true)
		if err != nil {
			return err
		}
		r, err := age.NewScryptRecipient(pass)
		if err != nil {
			return err
		}
		rs = append(rs, r)
	}
	var buf bytes.Buffer
	m, skipped, err := identity.Backup(*root, &buf, time.Now(), rs...)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(*out, buf.Bytes(), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %d files (onion keys, Fulcrum's TLS pair, SSH host key, configs)\n", *out, len(m.Files))
	for _, s := range skipped {
		fmt.Fprintf(stdout, "  not on this device, left out: %s\n", s)
	}
	fmt.Fprintln(stdout, "Keep it off this device. Restore on a fresh device of the same image: sudo nodectl restore FILE")
	return nil
}

func restoreCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("nodectl restore", flag.ContinueOnError)
	passFile := fs.String("passphrase-file", "", "read the passphrase from the first line of this file instead of the terminal")
	idFile := fs.String("i", "", "decrypt with the age identities in this file instead of a passphrase")
	root := fs.String("root", "/", "the root filesystem to restore into; anything but / also skips re-rendering and restarting the services")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: nodectl restore [--passphrase-file FILE | -i IDENTITY_FILE] ARCHIVE")
	}
	live := *root == "/"
	if live && os.Geteuid() != 0 {
		return errors.New("must run as root: sudo nodectl restore FILE")
	}
	var ids []age.Identity
	if *idFile != "" {
		f, err := os.Open(*idFile)
		if err != nil {
			return err
		}
		ids, err = age.ParseIdentities(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("-i %s: %w", *idFile, err)
		}
	} else {
		pass, err := passphrase(*passFile, false)
		if err != nil {
			return err
		}
		id, err := age.NewScryptIdentity(pass)
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	m, files, err := identity.Open(f, ids...)
	if err != nil {
		return fmt.Errorf("%s: %w; nothing restored", fs.Arg(0), err)
	}
	done, err := identity.Restore(*root, firstboot.SystemOwners(), m, files)
	for _, p := range done {
		fmt.Fprintf(stdout, "restored %s\n", p)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored the identity of %s, backed up %s\n", m.Hostname, m.Created.Format(time.RFC3339))
	if !live {
		return nil
	}
	// The restored overrides go into the rendered configs, and every
	// service reads its keys anew.
	if err := firstbootCmd(nil, stdout); err != nil {
		fmt.Fprintf(stdout, "warning: nodectl firstboot: %v\n", err)
	}
	for _, args := range [][]string{
		{"try-restart", "tor@default.service", "ssh.service", "bitcoind.service", "fulcrum.service"},
		{"restart", "nodebake-connect.service"},
	} {
		fmt.Fprintf(stdout, "systemctl %s\n", strings.Join(args, " "))
		if out, err := exec.Command("systemctl", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("systemctl %s: %v: %s (the files are restored; a reboot also makes the services use them)", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// passphrase reads it from the first line of file, or else from the
// terminal (twice when confirm).
func passphrase(file string, confirm bool) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		p, _, _ := strings.Cut(string(b), "\n")
		p = strings.TrimSuffix(p, "\r")
		if p == "" {
			return "", fmt.Errorf("%s: the first line is empty", file)
		}
		return p, nil
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return "", errors.New("no terminal to ask the passphrase on: use --passphrase-file FILE (or -r/-i with age keys)")
	}
	defer tty.Close()
	ask := func(prompt string) (string, error) {
		fmt.Fprint(tty, prompt)
		b, err := term.ReadPassword(int(tty.Fd()))
		fmt.Fprintln(tty)
		return string(b), err
	}
	p, err := ask("Passphrase: ")
	if err != nil {
		return "", err
	}
	if p == "" {
		return "", errors.New("empty passphrase")
	}
	if confirm {
		again, err := ask("Again: ")
		if err != nil {
			return "", err
		}
		if again != p {
			return "", errors.New("the passphrases differ")
		}
	}
	return p, nil
}
