package controllers

import (
	"reflect"
	"strings"
	"testing"
)

func TestWebhookAddress(t *testing.T) {
	cc, hosts, err := webhookAddress(ConversionOptions{URL: "https://127.0.0.1:9443"})
	if err != nil || *cc.URL != "https://127.0.0.1:9443/convert" || !reflect.DeepEqual(hosts, []string{"127.0.0.1"}) {
		t.Errorf("a URL without a path: %v %v %v", cc, hosts, err)
	}
	cc, hosts, err = webhookAddress(ConversionOptions{Service: "ops/hook"})
	if err != nil || cc.Service.Name != "hook" || *cc.Service.Port != 443 || *cc.Service.Path != "/convert" ||
		!reflect.DeepEqual(hosts, []string{"hook.ops.svc", "hook.ops.svc.cluster.local"}) {
		t.Errorf("a Service: %v %v %v", cc, hosts, err)
	}
	if cc, _, err := webhookAddress(ConversionOptions{}); cc != nil || err != nil {
		t.Errorf("neither: %v %v", cc, err)
	}
	for opts, want := range map[ConversionOptions]string{
		{URL: "http://127.0.0.1:9443/convert"}:          "want https://host:port/convert",
		{URL: "https://a/convert", Service: "ops/hook"}: "not both",
		{Service: "hook"}:                               "want namespace/name[:port]",
		{Service: "ops/hook:http"}:                      `port "http"`,
	} {
		if _, _, err := webhookAddress(opts); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: %v, want %q", opts, err, want)
		}
	}
}
