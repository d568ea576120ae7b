package cli

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
)

func (a *app) tokensCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "tokens", Short: "Create, list and revoke API tokens"}
	cmd.AddCommand(a.tokensCreateCommand(), a.tokensListCommand(), a.tokensRevokeCommand())
	return cmd
}

var tokenRoles = []string{"operator", "producer", "worker"}

func (a *app) tokensCreateCommand() *cobra.Command {
	var name, role string
	var allowedTypes, capabilities []string
	cmd := &cobra.Command{
		Use:   "create --name NAME --role operator|producer|worker",
		Short: "Create a token; its secret is printed once",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(name) == "" {
				return usageErrorf("missing --name: name the token after its user, for example --name ci-producer")
			}
			if !contains(tokenRoles, role) {
				return usageErrorf("invalid --role %q: use one of %s", role, strings.Join(tokenRoles, ", "))
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			body := map[string]any{"name": name, "role": role}
			if len(allowedTypes) > 0 || len(capabilities) > 0 {
				body["policy"] = map[string][]string{"allowedTypes": nonNil(allowedTypes), "capabilities": nonNil(capabilities)}
			}
			var raw json.RawMessage
			if err := c.do(cmd.Context(), "POST", "/api/tokens", nil, body, &raw); err != nil {
				return fmt.Errorf("create token: %w", err)
			}
			if a.jsonOutput() {
				return printJSON(a.stdout, raw)
			}
			var tok tokenInfo
			if err := json.Unmarshal(raw, &tok); err != nil {
				return fmt.Errorf("decode the new token: %w", err)
			}
			a.printTokens([]tokenInfo{tok})
			fmt.Fprintf(a.stdout, "\nToken (shown only this once; store it now):\n%s\n", tok.Token)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "name of the token, shown in lists and audit (required)")
	f.StringVar(&role, "role", "", "role of the token: operator, producer or worker (required)")
	f.StringSliceVar(&allowedTypes, "allowed-type", nil, "worker tokens: job type the token may claim; repeat or separate with commas (default any)")
	f.StringSliceVar(&capabilities, "capability", nil, "worker tokens: capability the token's workers have; repeat or separate with commas")
	return cmd
}

func (a *app) tokensListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List tokens without their secrets",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			return getAndShow(a, cmd, "/api/tokens", nil, "list tokens", "token list", func(list tokenList) {
				a.printTokens(list.Items)
			})
		},
	}
}

func (a *app) tokensRevokeCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token; requests with it fail with 401 from then on",
		Args:  exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := c.do(cmd.Context(), "DELETE", "/api/tokens/"+url.PathEscape(args[0]), nil, nil, &raw); err != nil {
				return fmt.Errorf("revoke token %s: %w", args[0], err)
			}
			if a.jsonOutput() {
				return printJSON(a.stdout, raw)
			}
			fmt.Fprintf(a.stdout, "Token %s revoked.\n", args[0])
			return nil
		},
	}
}

func (a *app) printTokens(tokens []tokenInfo) {
	if len(tokens) == 0 {
		fmt.Fprintln(a.stdout, "(none)")
		return
	}
	t := newTable(a.stdout)
	row(t, "ID", "NAME", "ROLE", "POLICY", "CREATED", "LAST USED", "REVOKED")
	for _, tok := range tokens {
		policy := "-"
		if len(tok.Policy) > 0 && string(tok.Policy) != "null" {
			policy = string(tok.Policy)
		}
		row(t, tok.ID, tok.Name, tok.Role, policy, formatTime(tok.CreatedAt), formatTime(tok.LastUsedAt), formatTime(tok.RevokedAt))
	}
	t.Flush()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
