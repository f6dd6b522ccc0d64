package standin

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// DemoSpec is the spec in with demo: true and its artifacts replaced by
// the stand-in releases served at baseURL: both, if it has none; else the
// ones it lists, at the Fulcrum version it pins (if the stand-ins have it).
// Everything else is kept, comments too (those inside artifacts: go with it).
func (r *Releases) DemoSpec(in []byte, baseURL string) (out []byte, name, version string, err error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(in, &doc); err != nil {
		return nil, "", "", err
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, "", "", errors.New("not a YAML mapping")
	}
	root := doc.Content[0]
	name, version = scalar(root, "name"), scalar(root, "version")
	if name == "" || version == "" {
		return nil, "", "", errors.New("the spec has no name or version")
	}
	kinds := []string{"bitcoin-core", "fulcrum"}
	fulcrum := DefaultFulcrumVersion
	if a := YAMLValue(root, "artifacts"); a != nil && a.Kind == yaml.MappingNode && len(a.Content) > 0 {
		kinds = nil
		for i := 0; i < len(a.Content); i += 2 {
			kind := a.Content[i].Value
			v := scalar(a.Content[i+1], "version")
			switch kind {
			case "bitcoin-core":
				if v != "" && v != BitcoinCoreVersion {
					return nil, "", "", fmt.Errorf("artifacts.bitcoin-core.version %s: the stand-ins are Bitcoin Core %s only", v, BitcoinCoreVersion)
				}
			case "fulcrum":
				if v != "" {
					if !slices.Contains(FulcrumVersions, v) {
						return nil, "", "", fmt.Errorf("artifacts.fulcrum.version %s: the stand-ins are Fulcrum %s only", v, strings.Join(FulcrumVersions, ", "))
					}
					fulcrum = v
				}
			default:
				return nil, "", "", fmt.Errorf("artifacts.%s: no stand-in for it", kind)
			}
			kinds = append(kinds, kind)
		}
	}
	block, err := r.ArtifactsFor(baseURL, fulcrum)
	if err != nil {
		return nil, "", "", err
	}
	var blockDoc yaml.Node
	if err := yaml.Unmarshal([]byte(block), &blockDoc); err != nil {
		return nil, "", "", fmt.Errorf("stand-in artifacts block: %v", err)
	}
	artifacts := YAMLValue(blockDoc.Content[0], "artifacts")
	var keep []*yaml.Node
	for i := 0; i < len(artifacts.Content); i += 2 {
		if slices.Contains(kinds, artifacts.Content[i].Value) {
			keep = append(keep, artifacts.Content[i], artifacts.Content[i+1])
		}
	}
	artifacts.Content = keep
	YAMLSet(root, "artifacts", artifacts)
	YAMLSet(root, "demo", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "true"})
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, "", "", err
	}
	return buf.Bytes(), name, version, nil
}

// YAMLValue is the value node of key in mapping m, or nil.
func YAMLValue(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func scalar(m *yaml.Node, key string) string {
	if v := YAMLValue(m, key); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
}

// YAMLSet replaces key's value in mapping m (keeping the key and its
// comments) or adds the key at the end. The tests edit specs with it too.
func YAMLSet(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
}
