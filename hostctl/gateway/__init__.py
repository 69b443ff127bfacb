"""Kong in front of the services: the declarative config derived from the specs, Kong's
schema as hostctl knows it, the Admin API client and diffs (the inventory's gateway section
is hostctl.spec.sections.gateway). Import each from its module:

    rendered = render_declarative(site)                # None when the site has no gateway
    rendered.text / rendered.redacted                  # for the gateway host / for people
    admin = KongAdmin(f"http://127.0.0.1:{local_port}")   # through Runner.forward_port
    diff_configs(admin.running_config(), yaml.safe_load(rendered.text), rendered.provenance)
    admin.sync(rendered.text, rendered.provenance)     # 201/304, hash verified; 400 -> spec lines
"""
