package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"safedav/server/auth"
)

// hashPasswordCommand prints a bcrypt hash for the users file. On a terminal it asks
// twice without echo; otherwise it reads one line from standard input, so scripts can
// pipe a password in.
func hashPasswordCommand() *cli.Command {
	return &cli.Command{
		Name:  "hash-password",
		Usage: "print a bcrypt hash of a password for the users file",
		Flags: []cli.Flag{&cli.IntFlag{Name: "cost", Value: auth.DefaultCost, Usage: "bcrypt cost (4 to 16)"}},
		Action: func(c *cli.Context) error {
			var pw string
			if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
				fmt.Fprint(os.Stderr, "Password: ")
				a, err := term.ReadPassword(fd)
				fmt.Fprintln(os.Stderr)
				if err != nil {
					return err
				}
				fmt.Fprint(os.Stderr, "Again: ")
				b, err := term.ReadPassword(fd)
				fmt.Fprintln(os.Stderr)
				if err != nil {
					return err
				}
				if string(a) != string(b) {
					return errors.New("the passwords differ")
				}
				pw = string(a)
			} else {
				line, err := bufio.NewReader(os.Stdin).ReadString('\n')
				if err != nil && line == "" {
					return errors.New("no password on standard input")
				}
				pw = strings.TrimRight(line, "\r\n")
			}
			h, err := auth.HashPassword(pw, c.Int("cost"))
			if err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, h)
			return nil
		},
	}
}
