// Package cli holds ociboot's cobra commands: their flags, and the progress
// output a person sees. It only wires flags to the packages that do the work.
package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// Version is the ociboot version printed by `ociboot version`.
const Version = "0.1.0-dev"

// exitError carries a process exit status out of a command (for example the
// pipeline status of `ociboot vm`), with an optional message for stderr.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// NewRoot returns the root `ociboot` command with all subcommands.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "ociboot",
		Short:         "Boot machines straight into OCI containers",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newBuildCmd(), newVMCmd(), newServeCmd(), newPullCmd(), newAnalyzeCmd(), newVerifyCmd(), newVersionCmd())
	return root
}

// Execute runs the CLI with args and returns the process exit status.
func Execute(args []string) int {
	root := NewRoot()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exitError); ok {
		if ee.msg != "" {
			fmt.Fprintln(os.Stderr, "ociboot:", ee.msg)
		}
		return ee.code
	}
	fmt.Fprintln(os.Stderr, "ociboot:", err)
	return 1
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the ociboot version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "ociboot", Version)
			return nil
		},
	}
}
