package memberstack_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/internal/memberstack"
)

func TestMain(m *testing.M) { awstest.Main(m) }

// TestMotoNewOrg: without a testing.TB, NewOrg creates the organization
// in the caller's account, its OUs and members; each member's Config acts
// in the member under the given role session; a bad spec is an error
// naming it, and a second NewOrg reuses what exists.
func TestMotoNewOrg(t *testing.T) {
	mgmt := awstest.New(t)
	ctx := context.Background()
	o, err := memberstack.NewOrg(ctx, mgmt.Config, "unit", []memberstack.MemberSpec{{Name: "dev", OU: "Development"}, {Name: "loose"}})
	if err != nil {
		t.Fatal(err)
	}
	if o.Management != awstest.DefaultAccount || !strings.HasPrefix(o.ID, "o-") || !strings.HasPrefix(o.Root, "r-") {
		t.Fatalf("org = %+v; want managed by %s", o, awstest.DefaultAccount)
	}
	dev, ok := o.Member("dev")
	loose, ok2 := o.Member("loose")
	if !ok || !ok2 || dev.OUID != o.OUs["Development"] || loose.OUID != o.Root {
		t.Fatalf("members = %+v; want dev in Development and loose under the root", o.Members)
	}
	for _, m := range o.Members {
		who, err := sts.NewFromConfig(m.Config).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			t.Fatal(err)
		}
		want := "arn:aws:sts::" + m.ID + ":assumed-role/" + memberstack.OrganizationAccessRole + "/unit"
		if aws.ToString(who.Account) != m.ID || aws.ToString(who.Arn) != want {
			t.Errorf("%s acts as %s in %s; want %s", m.Name, aws.ToString(who.Arn), aws.ToString(who.Account), want)
		}
	}
	again, err := memberstack.NewOrg(ctx, mgmt.Config, "", []memberstack.MemberSpec{{Name: "dev", OU: "Development"}})
	if err != nil || again.ID != o.ID || again.Members[0].ID != dev.ID {
		t.Fatalf("second NewOrg = %+v, %v; want the same organization and dev", again, err)
	}
	if _, err := memberstack.NewOrg(ctx, mgmt.Config, "", []memberstack.MemberSpec{{Name: "x"}, {Name: "x"}}); err == nil || !strings.Contains(err.Error(), "distinct") {
		t.Fatalf("duplicate member names: %v; want an error", err)
	}
}
