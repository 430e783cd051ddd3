package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

func newVMCmd() *cobra.Command {
	return &cobra.Command{
		Use: "vm",
		RunE: func(*cobra.Command, []string) error { return errors.New("vm: not written yet") },
	}
}
