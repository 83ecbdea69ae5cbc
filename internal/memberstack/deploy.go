package memberstack

// The member stack's deployment: what CloudFormation creates from the
// synthesized KeyRotorMember template, created with the SDK in one account
// by a small deployer that refuses, by name, what it cannot create as
// CloudFormation would.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// StackName is the name of the member stack (AWS::StackName, and the
// prefix of the physical names it generates).
const StackName = "KeyRotorMember"

// Deploy creates in account what CloudFormation creates from the member
// stack's template (build/cdk.org/KeyRotorMember.template.json, the JSON
// itself), with cfg, which must act in that account, and returns the
// stack's outputs (MemberRoleArn, MemberKeyArn). It supports the resource
// types and properties of cfnTypes, and the intrinsics Ref (resources,
// AWS::Partition, AWS::AccountId, AWS::Region, AWS::StackName,
// AWS::URLSuffix), Fn::GetAtt and Fn::Join; no Parameters, Conditions or
// other intrinsics. The whole template is checked before anything is
// created.
func Deploy(ctx context.Context, cfg aws.Config, account string, template []byte) (map[string]string, error) {
	return deployTemplate(ctx, cfg, account, StackName, template)
}

// DeployWith is Deploy with values for the template's parameters (as
// cdk deploy --parameters or a StackSet's parameter overrides give them);
// a parameter not given takes its Default.
func DeployWith(ctx context.Context, cfg aws.Config, account string, template []byte, params map[string]string) (map[string]string, error) {
	return deployTemplateWith(ctx, cfg, account, StackName, template, params)
}

// A CloudFormation template, as far as deployTemplate reads it.
type cfnTemplate struct {
	Parameters map[string]cfnParameter `json:"Parameters"`
	Conditions map[string]any          `json:"Conditions"`
	Resources  map[string]cfnResource  `json:"Resources"`
	Outputs    map[string]struct {
		Value any `json:"Value"`
	} `json:"Outputs"`
}

// cfnParameter is a template parameter: String or CommaDelimitedList.
type cfnParameter struct {
	Type    string  `json:"Type"`
	Default *string `json:"Default"`
}

type cfnResource struct {
	Type       string         `json:"Type"`
	Properties map[string]any `json:"Properties"`
	DependsOn  any            `json:"DependsOn"`
	Condition  string         `json:"Condition"`
}

// The resource types deployTemplate creates, their properties and the
// attributes Fn::GetAtt may read. Anything else fails, named: a template
// that grows a type or property must grow the deployment too, not
// silently deploy less.
var cfnTypes = map[string]struct {
	props, attrs []string
}{
	"AWS::IAM::Role": {
		props: []string{"RoleName", "AssumeRolePolicyDocument", "Description", "Path", "Policies", "ManagedPolicyArns", "MaxSessionDuration", "Tags"},
		attrs: []string{"Arn", "RoleId"},
	},
	"AWS::IAM::Policy":        {props: []string{"PolicyName", "PolicyDocument", "Roles", "Users", "Groups"}},
	"AWS::IAM::ManagedPolicy": {props: []string{"ManagedPolicyName", "Description", "Path", "PolicyDocument", "Roles", "Users", "Groups"}, attrs: []string{"PolicyArn"}},
	"AWS::KMS::Key": {
		props: []string{"Description", "KeyPolicy", "EnableKeyRotation", "KeySpec", "KeyUsage", "Tags"},
		attrs: []string{"Arn", "KeyId"},
	},
	"AWS::KMS::Alias": {props: []string{"AliasName", "TargetKeyId"}},
}

// deployed is a created resource: what Ref and Fn::GetAtt answer.
type deployed struct {
	ref   string
	attrs map[string]string
}

// deployer resolves a template's values in one account and creates its
// resources there.
type deployer struct {
	tmpl                       cfnTemplate
	params                     map[string]any  // parameter values: string, or []any for a list
	conds                      map[string]bool // the Conditions, evaluated
	account, partition, region string
	stack                      string
	done                       map[string]deployed
	iam                        *iam.Client
	kms                        *kms.Client
}

// deployTemplate creates a template's resources in account with cfg (which
// acts there), as stack, in dependency order (Ref, Fn::GetAtt, DependsOn), and returns
// its outputs. It supports the resource types and properties of cfnTypes,
// and the intrinsics Ref (resources, AWS::Partition, AWS::AccountId,
// AWS::Region, AWS::StackName, AWS::URLSuffix), Fn::GetAtt and Fn::Join;
// no Parameters, Conditions or other intrinsics. The whole template is
// checked before anything is created.
func deployTemplate(ctx context.Context, cfg aws.Config, account, stack string, body []byte) (map[string]string, error) {
	return deployTemplateWith(ctx, cfg, account, stack, body, nil)
}

// deployTemplateWith is deployTemplate with parameter values (String and
// CommaDelimitedList parameters; the others take their Default) and the
// Conditions Fn::Equals, Fn::Not, Fn::And, Fn::Or and Condition, which
// decide a resource's Condition as CloudFormation does.
func deployTemplateWith(ctx context.Context, cfg aws.Config, account, stack string, body []byte, params map[string]string) (map[string]string, error) {
	d := &deployer{account: account, partition: "aws", region: cfg.Region, stack: stack, done: map[string]deployed{}}
	if d.region == "" {
		d.region = "us-east-1"
	}
	if err := json.Unmarshal(body, &d.tmpl); err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	// CDK's analytics (the version reporting resource and its
	// condition) are not deployed.
	for id, r := range d.tmpl.Resources {
		if r.Type == "AWS::CDK::Metadata" {
			delete(d.tmpl.Resources, id)
		}
	}
	delete(d.tmpl.Conditions, "CDKMetadataAvailable")
	// CDK's bootstrap version check is the CLI's, not the template's.
	delete(d.tmpl.Parameters, "BootstrapVersion")
	if err := d.parameters(params); err != nil {
		return nil, err
	}
	order, err := d.check()
	if err != nil {
		return nil, err
	}
	d.iam, d.kms = iam.NewFromConfig(cfg), kms.NewFromConfig(cfg)
	for _, id := range order {
		if err := d.create(ctx, id); err != nil {
			return nil, fmt.Errorf("%s %s: %w", d.tmpl.Resources[id].Type, id, err)
		}
	}
	outputs := map[string]string{}
	for name, o := range d.tmpl.Outputs {
		v, err := d.resolve(o.Value)
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", name, err)
		}
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("output %s: %v is not a string", name, v)
		}
		outputs[name] = s
	}
	return outputs, nil
}

var pseudoParams = []string{"AWS::Partition", "AWS::AccountId", "AWS::Region", "AWS::StackName", "AWS::URLSuffix"}

func (d *deployer) pseudo(name string) string {
	switch name {
	case "AWS::Partition":
		return d.partition
	case "AWS::AccountId":
		return d.account
	case "AWS::Region":
		return d.region
	case "AWS::StackName":
		return d.stack
	}
	return "amazonaws.com" // AWS::URLSuffix
}

// check validates the template statically and returns the resources in
// creation order.
func (d *deployer) check() ([]string, error) {
	d.conds = map[string]bool{}
	for _, name := range sortedKeys(d.tmpl.Conditions) {
		v, err := d.condition(name, nil)
		if err != nil {
			return nil, err
		}
		d.conds[name] = v
	}
	deps := map[string][]string{}
	for _, id := range sortedKeys(d.tmpl.Resources) {
		r := d.tmpl.Resources[id]
		spec, ok := cfnTypes[r.Type]
		if !ok {
			return nil, fmt.Errorf("resource %s: type %s not supported", id, r.Type)
		}
		if r.Condition != "" {
			v, ok := d.conds[r.Condition]
			if !ok {
				return nil, fmt.Errorf("resource %s: Condition %s is not a condition of the template", id, r.Condition)
			}
			if !v {
				delete(d.tmpl.Resources, id) // CloudFormation does not create it
				continue
			}
		}
		for _, p := range sortedKeys(r.Properties) {
			if !slices.Contains(spec.props, p) {
				return nil, fmt.Errorf("resource %s (%s): property %s not supported", id, r.Type, p)
			}
		}
		refs := map[string]bool{}
		if err := d.refs(r.Properties, refs); err != nil {
			return nil, fmt.Errorf("resource %s: %w", id, err)
		}
		switch x := r.DependsOn.(type) {
		case nil:
		case string:
			refs[x] = true
		case []any:
			for _, e := range x {
				s, _ := e.(string)
				refs[s] = true
			}
		default:
			return nil, fmt.Errorf("resource %s: DependsOn %v", id, x)
		}
		for dep := range refs {
			if _, ok := d.tmpl.Resources[dep]; !ok {
				return nil, fmt.Errorf("resource %s depends on %q, which is not a resource of the template", id, dep)
			}
			deps[id] = append(deps[id], dep)
		}
		slices.Sort(deps[id])
	}
	for name, o := range d.tmpl.Outputs {
		if err := d.refs(o.Value, map[string]bool{}); err != nil {
			return nil, fmt.Errorf("output %s: %w", name, err)
		}
	}
	// Depth-first topological order, deterministic.
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(id string, path []string) error
	visit = func(id string, path []string) error {
		switch state[id] {
		case 1:
			return fmt.Errorf("circular dependency: %s", strings.Join(append(path, id), " -> "))
		case 2:
			return nil
		}
		state[id] = 1
		for _, dep := range deps[id] {
			if err := visit(dep, append(path, id)); err != nil {
				return err
			}
		}
		state[id] = 2
		order = append(order, id)
		return nil
	}
	for _, id := range sortedKeys(d.tmpl.Resources) {
		if err := visit(id, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// intrinsic returns the name and argument of v if it is an intrinsic
// function ({"Ref": x} or {"Fn::...": x}).
func intrinsic(v any) (string, any, bool) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return "", nil, false
	}
	for k, arg := range m {
		if k == "Ref" || strings.HasPrefix(k, "Fn::") {
			return k, arg, true
		}
	}
	return "", nil, false
}

// getAtt reads Fn::GetAtt's argument: [id, attr] or "id.attr".
func getAtt(arg any) (string, string, error) {
	switch x := arg.(type) {
	case []any:
		if len(x) == 2 {
			id, ok1 := x[0].(string)
			attr, ok2 := x[1].(string)
			if ok1 && ok2 {
				return id, attr, nil
			}
		}
	case string:
		if id, attr, ok := strings.Cut(x, "."); ok {
			return id, attr, nil
		}
	}
	return "", "", fmt.Errorf("Fn::GetAtt %v: want [logicalId, attribute]", arg)
}

// refs checks v's intrinsics and collects the resources they refer to.
func (d *deployer) refs(v any, into map[string]bool) error {
	if name, arg, ok := intrinsic(v); ok {
		switch name {
		case "Ref":
			s, ok := arg.(string)
			if !ok {
				return fmt.Errorf("Ref %v: want a name", arg)
			}
			if slices.Contains(pseudoParams, s) {
				return nil
			}
			if _, ok := d.params[s]; ok {
				return nil
			}
			if _, ok := d.tmpl.Resources[s]; !ok {
				return fmt.Errorf("Ref %s: neither a resource or parameter of the template nor a supported pseudo parameter (%s)", s, strings.Join(pseudoParams, ", "))
			}
			into[s] = true
			return nil
		case "Fn::GetAtt":
			id, attr, err := getAtt(arg)
			if err != nil {
				return err
			}
			r, ok := d.tmpl.Resources[id]
			if !ok {
				return fmt.Errorf("Fn::GetAtt %s.%s: no resource %s", id, attr, id)
			}
			if !slices.Contains(cfnTypes[r.Type].attrs, attr) {
				return fmt.Errorf("Fn::GetAtt %s.%s: attribute %s of %s not supported", id, attr, attr, r.Type)
			}
			into[id] = true
			return nil
		case "Fn::Join":
			j, ok := arg.([]any)
			if !ok || len(j) != 2 {
				return fmt.Errorf("Fn::Join %v: want [separator, [values]]", arg)
			}
			if _, ok := j[0].(string); !ok {
				return fmt.Errorf("Fn::Join %v: the separator is not a string", arg)
			}
			if _, ok := j[1].([]any); !ok {
				if n, _, isFn := intrinsic(j[1]); !isFn || n != "Ref" {
					return fmt.Errorf("Fn::Join %v: want a list of values or a Ref to a list parameter", arg)
				}
			}
			return d.refs(j[1], into)
		case "Fn::Split":
			j, ok := arg.([]any)
			if !ok || len(j) != 2 {
				return fmt.Errorf("Fn::Split %v: want [separator, value]", arg)
			}
			if _, ok := j[0].(string); !ok {
				return fmt.Errorf("Fn::Split %v: the separator is not a string", arg)
			}
			return d.refs(j[1], into)
		}
		return fmt.Errorf("intrinsic %s not supported (only Ref, Fn::GetAtt, Fn::Join, Fn::Split)", name)
	}
	switch x := v.(type) {
	case map[string]any:
		for _, k := range sortedKeys(x) {
			if err := d.refs(x[k], into); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range x {
			if err := d.refs(e, into); err != nil {
				return err
			}
		}
	}
	return nil
}

// resolve evaluates v's intrinsics with the resources created so far.
func (d *deployer) resolve(v any) (any, error) {
	if name, arg, ok := intrinsic(v); ok {
		switch name {
		case "Ref":
			s, _ := arg.(string)
			if slices.Contains(pseudoParams, s) {
				return d.pseudo(s), nil
			}
			if v, ok := d.params[s]; ok {
				return v, nil
			}
			r, ok := d.done[s]
			if !ok {
				return nil, fmt.Errorf("Ref %s: not created yet", s)
			}
			return r.ref, nil
		case "Fn::GetAtt":
			id, attr, err := getAtt(arg)
			if err != nil {
				return nil, err
			}
			r, ok := d.done[id]
			if !ok {
				return nil, fmt.Errorf("Fn::GetAtt %s.%s: not created yet", id, attr)
			}
			a, ok := r.attrs[attr]
			if !ok {
				return nil, fmt.Errorf("Fn::GetAtt %s.%s: no such attribute", id, attr)
			}
			return a, nil
		case "Fn::Join":
			j, _ := arg.([]any)
			sep, _ := j[0].(string)
			parts, _ := j[1].([]any)
			if parts == nil { // a Ref to a list parameter
				l, err := d.resolve(j[1])
				if err != nil {
					return nil, fmt.Errorf("Fn::Join: %w", err)
				}
				if parts, _ = l.([]any); parts == nil {
					return nil, fmt.Errorf("Fn::Join: %v is not a list", l)
				}
			}
			var out []string
			for _, p := range parts {
				s, err := d.str(p)
				if err != nil {
					return nil, fmt.Errorf("Fn::Join: %w", err)
				}
				out = append(out, s)
			}
			return strings.Join(out, sep), nil
		case "Fn::Split":
			j, _ := arg.([]any)
			sep, _ := j[0].(string)
			v, err := d.str(j[1])
			if err != nil {
				return nil, fmt.Errorf("Fn::Split: %w", err)
			}
			var out []any
			for _, e := range strings.Split(v, sep) {
				out = append(out, e)
			}
			return out, nil
		}
		return nil, fmt.Errorf("intrinsic %s not supported", name)
	}
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			r, err := d.resolve(e)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			r, err := d.resolve(e)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	}
	return v, nil
}

// str resolves v to a string (a number or boolean as CloudFormation
// formats it).
func (d *deployer) str(v any) (string, error) {
	r, err := d.resolve(v)
	if err != nil {
		return "", err
	}
	switch x := r.(type) {
	case string:
		return x, nil
	case float64, bool:
		return fmt.Sprint(x), nil
	}
	return "", fmt.Errorf("%v is not a string", r)
}

// doc resolves a policy document (an object, or a JSON string) to JSON.
func (d *deployer) doc(v any) (string, error) {
	r, err := d.resolve(v)
	if err != nil {
		return "", err
	}
	if s, ok := r.(string); ok {
		return s, nil
	}
	b, err := json.Marshal(r)
	return string(b), err
}

// strs resolves a list of strings.
func (d *deployer) strs(v any) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%v is not a list", v)
	}
	var out []string
	for _, e := range list {
		s, err := d.str(e)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// props resolves a resource's string properties: missing ones are "".
func (d *deployer) props(p map[string]any, names ...string) (map[string]string, error) {
	out := map[string]string{}
	for _, n := range names {
		if v, ok := p[n]; ok {
			s, err := d.str(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", n, err)
			}
			out[n] = s
		}
	}
	return out, nil
}

// physicalName is the name CloudFormation generates for a resource
// without one: stack-logicalId-RANDOM.
func (d *deployer) physicalName(id string, max int) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := d.stack + "-" + id
	suffix := "-" + strings.ToUpper(hex.EncodeToString(b[:]))
	if len(name)+len(suffix) > max {
		name = name[:max-len(suffix)]
	}
	return name + suffix
}

func (d *deployer) tags(v any) ([][2]string, error) {
	if v == nil {
		return nil, nil
	}
	r, err := d.resolve(v)
	if err != nil {
		return nil, err
	}
	list, ok := r.([]any)
	if !ok {
		return nil, fmt.Errorf("Tags %v: not a list", r)
	}
	var out [][2]string
	for _, e := range list {
		m, _ := e.(map[string]any)
		k, ok1 := m["Key"].(string)
		val, ok2 := m["Value"].(string)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("Tags: %v is not {Key, Value}", e)
		}
		out = append(out, [2]string{k, val})
	}
	return out, nil
}

// attach attaches a managed policy, or puts an inline one, on the roles,
// users and groups the properties name.
func (d *deployer) attach(ctx context.Context, p map[string]any, put func(kind, name string) error) error {
	for _, kind := range []string{"Roles", "Users", "Groups"} {
		names, err := d.strs(p[kind])
		if err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		for _, n := range names {
			if err := put(kind, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// create creates resource id.
func (d *deployer) create(ctx context.Context, id string) error {
	r := d.tmpl.Resources[id]
	p := r.Properties
	switch r.Type {
	case "AWS::IAM::Role":
		s, err := d.props(p, "RoleName", "Description", "Path")
		if err != nil {
			return err
		}
		name := s["RoleName"]
		if name == "" {
			name = d.physicalName(id, 64)
		}
		trust, err := d.doc(p["AssumeRolePolicyDocument"])
		if err != nil {
			return fmt.Errorf("AssumeRolePolicyDocument: %w", err)
		}
		in := &iam.CreateRoleInput{RoleName: aws.String(name), AssumeRolePolicyDocument: aws.String(trust)}
		if s["Description"] != "" {
			in.Description = aws.String(s["Description"])
		}
		if s["Path"] != "" {
			in.Path = aws.String(s["Path"])
		}
		if v, ok := p["MaxSessionDuration"].(float64); ok {
			in.MaxSessionDuration = aws.Int32(int32(v))
		}
		tags, err := d.tags(p["Tags"])
		if err != nil {
			return err
		}
		for _, tg := range tags {
			in.Tags = append(in.Tags, iamtypes.Tag{Key: aws.String(tg[0]), Value: aws.String(tg[1])})
		}
		out, err := d.iam.CreateRole(ctx, in)
		if err != nil {
			return err
		}
		if p["Policies"] != nil {
			pols, ok := p["Policies"].([]any)
			if !ok {
				return fmt.Errorf("Policies %v: not a list", p["Policies"])
			}
			for _, e := range pols {
				m, _ := e.(map[string]any)
				pn, err := d.str(m["PolicyName"])
				if err != nil {
					return fmt.Errorf("Policies: PolicyName: %w", err)
				}
				doc, err := d.doc(m["PolicyDocument"])
				if err != nil {
					return fmt.Errorf("Policies: %s: %w", pn, err)
				}
				if _, err := d.iam.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String(pn), PolicyDocument: aws.String(doc)}); err != nil {
					return err
				}
			}
		}
		arns, err := d.strs(p["ManagedPolicyArns"])
		if err != nil {
			return fmt.Errorf("ManagedPolicyArns: %w", err)
		}
		for _, arn := range arns {
			if _, err := d.iam.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: aws.String(name), PolicyArn: aws.String(arn)}); err != nil {
				return err
			}
		}
		d.done[id] = deployed{ref: name, attrs: map[string]string{"Arn": aws.ToString(out.Role.Arn), "RoleId": aws.ToString(out.Role.RoleId)}}
	case "AWS::IAM::Policy":
		s, err := d.props(p, "PolicyName")
		if err != nil {
			return err
		}
		doc, err := d.doc(p["PolicyDocument"])
		if err != nil {
			return fmt.Errorf("PolicyDocument: %w", err)
		}
		name := s["PolicyName"]
		err = d.attach(ctx, p, func(kind, on string) error {
			var err error
			switch kind {
			case "Roles":
				_, err = d.iam.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(on), PolicyName: aws.String(name), PolicyDocument: aws.String(doc)})
			case "Users":
				_, err = d.iam.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: aws.String(on), PolicyName: aws.String(name), PolicyDocument: aws.String(doc)})
			default:
				_, err = d.iam.PutGroupPolicy(ctx, &iam.PutGroupPolicyInput{GroupName: aws.String(on), PolicyName: aws.String(name), PolicyDocument: aws.String(doc)})
			}
			return err
		})
		if err != nil {
			return err
		}
		d.done[id] = deployed{ref: name}
	case "AWS::IAM::ManagedPolicy":
		s, err := d.props(p, "ManagedPolicyName", "Description", "Path")
		if err != nil {
			return err
		}
		doc, err := d.doc(p["PolicyDocument"])
		if err != nil {
			return fmt.Errorf("PolicyDocument: %w", err)
		}
		name := s["ManagedPolicyName"]
		if name == "" {
			name = d.physicalName(id, 128)
		}
		in := &iam.CreatePolicyInput{PolicyName: aws.String(name), PolicyDocument: aws.String(doc)}
		if s["Description"] != "" {
			in.Description = aws.String(s["Description"])
		}
		if s["Path"] != "" {
			in.Path = aws.String(s["Path"])
		}
		out, err := d.iam.CreatePolicy(ctx, in)
		if err != nil {
			return err
		}
		arn := aws.ToString(out.Policy.Arn)
		err = d.attach(ctx, p, func(kind, on string) error {
			var err error
			switch kind {
			case "Roles":
				_, err = d.iam.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: aws.String(on), PolicyArn: aws.String(arn)})
			case "Users":
				_, err = d.iam.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: aws.String(on), PolicyArn: aws.String(arn)})
			default:
				_, err = d.iam.AttachGroupPolicy(ctx, &iam.AttachGroupPolicyInput{GroupName: aws.String(on), PolicyArn: aws.String(arn)})
			}
			return err
		})
		if err != nil {
			return err
		}
		d.done[id] = deployed{ref: arn, attrs: map[string]string{"PolicyArn": arn}}
	case "AWS::KMS::Key":
		s, err := d.props(p, "Description", "KeySpec", "KeyUsage")
		if err != nil {
			return err
		}
		in := &kms.CreateKeyInput{}
		if s["Description"] != "" {
			in.Description = aws.String(s["Description"])
		}
		if s["KeySpec"] != "" {
			in.KeySpec = kmstypes.KeySpec(s["KeySpec"])
		}
		if s["KeyUsage"] != "" {
			in.KeyUsage = kmstypes.KeyUsageType(s["KeyUsage"])
		}
		if p["KeyPolicy"] != nil {
			doc, err := d.doc(p["KeyPolicy"])
			if err != nil {
				return fmt.Errorf("KeyPolicy: %w", err)
			}
			in.Policy = aws.String(doc)
		}
		tags, err := d.tags(p["Tags"])
		if err != nil {
			return err
		}
		for _, tg := range tags {
			in.Tags = append(in.Tags, kmstypes.Tag{TagKey: aws.String(tg[0]), TagValue: aws.String(tg[1])})
		}
		out, err := d.kms.CreateKey(ctx, in)
		if err != nil {
			return err
		}
		keyID := aws.ToString(out.KeyMetadata.KeyId)
		if rot, _ := p["EnableKeyRotation"].(bool); rot {
			if _, err := d.kms.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: aws.String(keyID)}); err != nil {
				return err
			}
		}
		d.done[id] = deployed{ref: keyID, attrs: map[string]string{"Arn": aws.ToString(out.KeyMetadata.Arn), "KeyId": keyID}}
	case "AWS::KMS::Alias":
		s, err := d.props(p, "AliasName", "TargetKeyId")
		if err != nil {
			return err
		}
		target := s["TargetKeyId"]
		if _, after, ok := strings.Cut(target, ":key/"); ok && strings.HasPrefix(target, "arn:") {
			target = after // KMS keeps the key id; CloudFormation takes either
		}
		if _, err := d.kms.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(s["AliasName"]), TargetKeyId: aws.String(target)}); err != nil {
			return err
		}
		d.done[id] = deployed{ref: s["AliasName"]}
	default:
		return fmt.Errorf("type %s not supported", r.Type)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// parameters sets each parameter's value: params' value, else its Default.
// A parameter with neither, a type other than String and
// CommaDelimitedList, or a value for a parameter the template does not
// declare, is an error naming it.
func (d *deployer) parameters(params map[string]string) error {
	d.params = map[string]any{}
	for name := range params {
		if _, ok := d.tmpl.Parameters[name]; !ok {
			return fmt.Errorf("parameter %s: not a parameter of the template (%s)", name, strings.Join(sortedKeys(d.tmpl.Parameters), ", "))
		}
	}
	for _, name := range sortedKeys(d.tmpl.Parameters) {
		p := d.tmpl.Parameters[name]
		v, ok := params[name]
		if !ok && p.Default == nil {
			return fmt.Errorf("parameter %s: no value and no Default", name)
		}
		if !ok {
			v = *p.Default
		}
		switch p.Type {
		case "String":
			d.params[name] = v
		case "CommaDelimitedList":
			var l []any
			for _, e := range strings.Split(v, ",") {
				l = append(l, strings.TrimSpace(e))
			}
			d.params[name] = l
		default:
			return fmt.Errorf("parameter %s: type %s not supported (only String, CommaDelimitedList)", name, p.Type)
		}
	}
	return nil
}

// condition evaluates the template's condition name (seen: the conditions
// being evaluated, against cycles).
func (d *deployer) condition(name string, seen []string) (bool, error) {
	if v, ok := d.conds[name]; ok {
		return v, nil
	}
	if slices.Contains(seen, name) {
		return false, fmt.Errorf("condition %s: circular (%s)", name, strings.Join(append(seen, name), " -> "))
	}
	expr, ok := d.tmpl.Conditions[name]
	if !ok {
		return false, fmt.Errorf("condition %s: not a condition of the template", name)
	}
	v, err := d.evalCondition(expr, append(seen, name))
	if err != nil {
		return false, fmt.Errorf("condition %s: %w", name, err)
	}
	d.conds[name] = v
	return v, nil
}

func (d *deployer) evalCondition(expr any, seen []string) (bool, error) {
	m, ok := expr.(map[string]any)
	if !ok || len(m) != 1 {
		return false, fmt.Errorf("%v: want one condition function", expr)
	}
	for fn, arg := range m {
		args, _ := arg.([]any)
		switch fn {
		case "Condition":
			s, _ := arg.(string)
			return d.condition(s, seen)
		case "Fn::Equals":
			if len(args) != 2 {
				return false, fmt.Errorf("Fn::Equals %v: want two values", arg)
			}
			a, err := d.str(args[0])
			if err != nil {
				return false, err
			}
			b, err := d.str(args[1])
			return a == b, err
		case "Fn::Not":
			if len(args) != 1 {
				return false, fmt.Errorf("Fn::Not %v: want one condition", arg)
			}
			v, err := d.evalCondition(args[0], seen)
			return !v, err
		case "Fn::And", "Fn::Or":
			if len(args) < 2 {
				return false, fmt.Errorf("%s %v: want two conditions or more", fn, arg)
			}
			and := fn == "Fn::And"
			for _, c := range args {
				v, err := d.evalCondition(c, seen)
				if err != nil {
					return false, err
				}
				if v != and {
					return v, nil
				}
			}
			return and, nil
		}
		return false, fmt.Errorf("condition function %s not supported", fn)
	}
	return false, nil
}
