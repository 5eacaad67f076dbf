package main

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
	"gopkg.in/yaml.v3"
)

// withConfigFile lets every flag of a command also be set in a YAML file given with
// --config (SAFEDAV_CONFIG): keys are the flag names. Precedence: command line, then
// environment, then the file, then the default. An unknown key is an error, so a
// misspelt setting is not silently ignored.
func withConfigFile(cmd *cli.Command) *cli.Command {
	var wrapped []cli.Flag
	known := map[string]bool{}
	for _, f := range cmd.Flags {
		for _, n := range f.Names() {
			known[n] = true
		}
		switch f := f.(type) {
		case *cli.StringFlag:
			wrapped = append(wrapped, altsrc.NewStringFlag(f))
		case *cli.StringSliceFlag:
			wrapped = append(wrapped, altsrc.NewStringSliceFlag(f))
		case *cli.IntFlag:
			wrapped = append(wrapped, altsrc.NewIntFlag(f))
		case *cli.Int64Flag:
			wrapped = append(wrapped, altsrc.NewInt64Flag(f))
		case *cli.BoolFlag:
			wrapped = append(wrapped, altsrc.NewBoolFlag(f))
		case *cli.DurationFlag:
			wrapped = append(wrapped, altsrc.NewDurationFlag(f))
		default:
			panic(fmt.Sprintf("withConfigFile: flag type %T", f))
		}
	}
	cmd.Flags = append(wrapped, &cli.StringFlag{Name: "config", EnvVars: []string{"SAFEDAV_CONFIG"},
		Usage: "YAML file setting any of these flags by name (e.g. listen: 0.0.0.0:8443)"})
	load := altsrc.InitInputSourceWithContext(wrapped, altsrc.NewYamlSourceFromFlagFunc("config"))
	cmd.Before = func(c *cli.Context) error {
		if path := c.String("config"); path != "" {
			if err := checkConfigKeys(path, known); err != nil {
				return err
			}
		}
		return load(c)
	}
	return cmd
}

// checkConfigKeys refuses a configuration file with a key that is not a flag name.
func checkConfigKeys(path string, known map[string]bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("--config %s: %w", path, err)
	}
	var unknown []string
	for k := range m {
		if !known[k] || k == "config" {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("--config %s: unknown settings %s (the keys are the flag names of `safedav serve --help`)",
			path, strings.Join(unknown, ", "))
	}
	return nil
}
