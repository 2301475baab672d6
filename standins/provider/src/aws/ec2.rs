//! The network: VPC, subnets, internet gateway, elastic IPs, NAT gateways, route tables
//! and their associations, through EC2's Query protocol.

use std::collections::BTreeMap;
use std::time::Duration;

use super::kinds::Kind;
use super::transport::{expect, found, gone};
use super::{
    Attrs, AwsCloud, Params, Xml, flag, object, required, string, string_list_value, tag_changes,
};
use crate::cloud::CloudError;
use crate::value::Value;

/// How long a NAT gateway may take to become available or to go.
const NAT_WAIT: Duration = Duration::from_secs(600);

/// The route attributes of `aws_route_table`'s `route` blocks, with the request
/// parameter each target or destination is sent as.
const ROUTE_FIELDS: &[(&str, &str, &str)] = &[
    ("cidr_block", "DestinationCidrBlock", "destinationCidrBlock"),
    (
        "ipv6_cidr_block",
        "DestinationIpv6CidrBlock",
        "destinationIpv6CidrBlock",
    ),
    (
        "destination_prefix_list_id",
        "DestinationPrefixListId",
        "destinationPrefixListId",
    ),
    ("gateway_id", "GatewayId", "gatewayId"),
    ("nat_gateway_id", "NatGatewayId", "natGatewayId"),
    (
        "egress_only_gateway_id",
        "EgressOnlyInternetGatewayId",
        "egressOnlyInternetGatewayId",
    ),
    ("carrier_gateway_id", "CarrierGatewayId", "carrierGatewayId"),
    ("core_network_arn", "CoreNetworkArn", "coreNetworkArn"),
    ("local_gateway_id", "LocalGatewayId", "localGatewayId"),
    (
        "network_interface_id",
        "NetworkInterfaceId",
        "networkInterfaceId",
    ),
    ("transit_gateway_id", "TransitGatewayId", "transitGatewayId"),
    ("vpc_endpoint_id", "VpcEndpointId", "vpcEndpointId"),
    (
        "vpc_peering_connection_id",
        "VpcPeeringConnectionId",
        "vpcPeeringConnectionId",
    ),
];

/// The tag specification's resource type of a kind that carries tags.
fn resource_type(kind: Kind) -> Option<&'static str> {
    Some(match kind {
        Kind::Vpc => "vpc",
        Kind::Subnet => "subnet",
        Kind::InternetGateway => "internet-gateway",
        Kind::Eip => "elastic-ip",
        Kind::NatGateway => "natgateway",
        Kind::RouteTable => "route-table",
        _ => return None,
    })
}

/// Tags at creation, as the real provider sends them: `TagSpecification` with the call.
fn tag_specification(params: Params, kind: Kind, tags: &BTreeMap<String, String>) -> Params {
    match resource_type(kind) {
        Some(resource) if !tags.is_empty() => params
            .set("TagSpecification.1.ResourceType", resource)
            .tags("TagSpecification.1.Tag", tags),
        _ => params,
    }
}

impl AwsCloud {
    fn ec2_arn(&self, resource: &str, id: &str) -> Value {
        string(format!(
            "arn:aws:ec2:{}:{}:{resource}/{id}",
            self.region, self.account_id
        ))
    }
}

pub async fn create(cloud: &AwsCloud, kind: Kind, planned: &Value) -> Result<String, CloudError> {
    let what = format!("creating {}", kind.label());
    let tags = cloud.tags_all(planned);
    let answer = |xml: Xml, path: &[&str]| {
        xml.text_at(path)
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| CloudError::Refused(format!("{what}: the answer names no id")))
    };
    match kind {
        Kind::Vpc => {
            let params = Params::new()
                .set("CidrBlock", required(kind, planned, "cidr_block")?)
                .set_opt("InstanceTenancy", planned.str_attr("instance_tenancy"));
            let xml = expect(
                cloud
                    .ec2("CreateVpc", tag_specification(params, kind, &tags))
                    .await,
                &what,
            )?;
            let id = answer(xml, &["vpc", "vpcId"])?;
            set_vpc_attributes(cloud, &id, planned).await?;
            Ok(id)
        }
        Kind::Subnet => {
            let params = Params::new()
                .set("VpcId", required(kind, planned, "vpc_id")?)
                .set_opt("CidrBlock", planned.str_attr("cidr_block"))
                .set_opt("AvailabilityZone", planned.str_attr("availability_zone"))
                .set_opt(
                    "AvailabilityZoneId",
                    planned
                        .str_attr("availability_zone")
                        .map_or(planned.str_attr("availability_zone_id"), |_| None),
                );
            let xml = expect(
                cloud
                    .ec2("CreateSubnet", tag_specification(params, kind, &tags))
                    .await,
                &what,
            )?;
            let id = answer(xml, &["subnet", "subnetId"])?;
            set_subnet_attributes(cloud, &id, planned).await?;
            Ok(id)
        }
        Kind::InternetGateway => {
            let xml = expect(
                cloud
                    .ec2(
                        "CreateInternetGateway",
                        tag_specification(Params::new(), kind, &tags),
                    )
                    .await,
                &what,
            )?;
            let id = answer(xml, &["internetGateway", "internetGatewayId"])?;
            if let Some(vpc) = planned.str_attr("vpc_id") {
                attach_gateway(cloud, &id, vpc).await?;
            }
            Ok(id)
        }
        Kind::Eip => {
            let params = Params::new()
                .set("Domain", planned.str_attr("domain").unwrap_or("vpc"))
                .set_opt("Address", planned.str_attr("address"))
                .set_opt("PublicIpv4Pool", planned.str_attr("public_ipv4_pool"))
                .set_opt(
                    "NetworkBorderGroup",
                    planned.str_attr("network_border_group"),
                );
            let xml = expect(
                cloud
                    .ec2("AllocateAddress", tag_specification(params, kind, &tags))
                    .await,
                &what,
            )?;
            answer(xml, &["allocationId"])
        }
        Kind::NatGateway => {
            let params = Params::new()
                .set_opt("SubnetId", planned.str_attr("subnet_id"))
                .set_opt("AllocationId", planned.str_attr("allocation_id"))
                .set(
                    "ConnectivityType",
                    planned.str_attr("connectivity_type").unwrap_or("public"),
                )
                .set_opt("PrivateIpAddress", planned.str_attr("private_ip"));
            let xml = expect(
                cloud
                    .ec2("CreateNatGateway", tag_specification(params, kind, &tags))
                    .await,
                &what,
            )?;
            let id = answer(xml, &["natGateway", "natGatewayId"])?;
            // As the real provider, wait for it to be usable by routes.
            cloud
                .wait_until(&format!("EC2 NAT Gateway ({id}) create"), NAT_WAIT, || {
                    nat_state(cloud, &id)
                })
                .await?;
            Ok(id)
        }
        Kind::RouteTable => {
            let params = Params::new().set("VpcId", required(kind, planned, "vpc_id")?);
            let xml = expect(
                cloud
                    .ec2("CreateRouteTable", tag_specification(params, kind, &tags))
                    .await,
                &what,
            )?;
            let id = answer(xml, &["routeTable", "routeTableId"])?;
            for route in routes(planned) {
                put_route(cloud, &id, &route, "CreateRoute").await?;
            }
            Ok(id)
        }
        Kind::RouteTableAssociation => {
            let params = Params::new()
                .set("RouteTableId", required(kind, planned, "route_table_id")?)
                .set_opt("SubnetId", planned.str_attr("subnet_id"))
                .set_opt("GatewayId", planned.str_attr("gateway_id"));
            let xml = expect(cloud.ec2("AssociateRouteTable", params).await, &what)?;
            answer(xml, &["associationId"])
        }
        _ => Err(CloudError::Unsupported(kind.label().into())),
    }
}

/// A NAT gateway's readiness: true once available; a failed one is an error.
async fn nat_state(cloud: &AwsCloud, id: &str) -> Result<bool, CloudError> {
    let xml = expect(
        cloud
            .ec2(
                "DescribeNatGateways",
                Params::new().set("NatGatewayId.1", id),
            )
            .await,
        &format!("reading EC2 NAT Gateway ({id})"),
    )?;
    let state = xml
        .list("natGatewaySet")
        .first()
        .and_then(|g| g.text_of("state"))
        .unwrap_or_default()
        .to_owned();
    match state.as_str() {
        "available" => Ok(true),
        "failed" => Err(CloudError::Refused(format!(
            "EC2 NAT Gateway ({id}) failed"
        ))),
        _ => Ok(false),
    }
}

async fn set_vpc_attributes(cloud: &AwsCloud, id: &str, planned: &Value) -> Result<(), CloudError> {
    for (attr, param) in [
        ("enable_dns_support", "EnableDnsSupport"),
        ("enable_dns_hostnames", "EnableDnsHostnames"),
        (
            "enable_network_address_usage_metrics",
            "EnableNetworkAddressUsageMetrics",
        ),
    ] {
        if let Some(on) = flag(planned.get(attr)) {
            expect(
                cloud
                    .ec2(
                        "ModifyVpcAttribute",
                        Params::new()
                            .set("VpcId", id)
                            .set(&format!("{param}.Value"), on.to_string()),
                    )
                    .await,
                &format!("modifying EC2 VPC ({id}) attribute {param}"),
            )?;
        }
    }
    Ok(())
}

async fn set_subnet_attributes(
    cloud: &AwsCloud,
    id: &str,
    planned: &Value,
) -> Result<(), CloudError> {
    if let Some(on) = flag(planned.get("map_public_ip_on_launch")) {
        expect(
            cloud
                .ec2(
                    "ModifySubnetAttribute",
                    Params::new()
                        .set("SubnetId", id)
                        .set("MapPublicIpOnLaunch.Value", on.to_string()),
                )
                .await,
            &format!("modifying EC2 Subnet ({id}) attribute MapPublicIpOnLaunch"),
        )?;
    }
    Ok(())
}

async fn attach_gateway(cloud: &AwsCloud, id: &str, vpc: &str) -> Result<(), CloudError> {
    expect(
        cloud
            .ec2(
                "AttachInternetGateway",
                Params::new().set("InternetGatewayId", id).set("VpcId", vpc),
            )
            .await,
        &format!("attaching EC2 Internet Gateway ({id}) to VPC ({vpc})"),
    )
    .map(|_| ())
}

/// The planned `route` blocks, each as its set fields.
fn routes(planned: &Value) -> Vec<BTreeMap<&'static str, String>> {
    let Value::List(items) = planned.get("route") else {
        return vec![];
    };
    items
        .iter()
        .map(|route| {
            ROUTE_FIELDS
                .iter()
                .filter_map(|(attr, _, _)| {
                    route
                        .str_attr(attr)
                        .filter(|v| !v.is_empty())
                        .map(|v| (*attr, v.to_owned()))
                })
                .collect()
        })
        .collect()
}

async fn put_route(
    cloud: &AwsCloud,
    table: &str,
    route: &BTreeMap<&'static str, String>,
    action: &str,
) -> Result<(), CloudError> {
    let mut params = Params::new().set("RouteTableId", table);
    for (attr, param, _) in ROUTE_FIELDS {
        if let Some(value) = route.get(attr) {
            params = params.set(param, value.clone());
        }
    }
    expect(
        cloud.ec2(action, params).await,
        &format!("creating Route in Route Table ({table})"),
    )
    .map(|_| ())
}

/// The one item of a `Describe*` answer's `set`, None when there is none.
async fn describe_one(
    cloud: &AwsCloud,
    kind: Kind,
    action: &str,
    params: Params,
    set: &str,
    id: &str,
) -> Result<Option<Xml>, CloudError> {
    let answer = found(
        cloud.ec2(action, params).await,
        &format!("reading {} ({id})", kind.label()),
    )?;
    Ok(answer.and_then(|xml| xml.list(set).first().map(|item| (*item).clone())))
}

/// The first item of a filtered `Describe*` (`Filter.N.Name` / `Filter.N.Value.1`).
async fn first_filtered(
    cloud: &AwsCloud,
    action: &str,
    filters: &[(&str, &str)],
    set: &str,
    field: &str,
) -> Result<Option<String>, CloudError> {
    let mut params = Params::new();
    for (i, (name, value)) in filters.iter().enumerate() {
        params = params
            .set(&format!("Filter.{}.Name", i + 1), *name)
            .set(&format!("Filter.{}.Value.1", i + 1), *value);
    }
    let xml = expect(cloud.ec2(action, params).await, action)?;
    Ok(xml
        .list(set)
        .first()
        .and_then(|item| item.text_of(field))
        .map(str::to_owned))
}

pub async fn read(cloud: &AwsCloud, kind: Kind, id: &str) -> Result<Option<Attrs>, CloudError> {
    let mut attrs = Attrs::new();
    attrs.string("id", Some(id));
    match kind {
        Kind::Vpc => {
            let Some(vpc) = describe_one(
                cloud,
                kind,
                "DescribeVpcs",
                Params::new().set("VpcId.1", id),
                "vpcSet",
                id,
            )
            .await?
            else {
                return Ok(None);
            };
            attrs
                .set("arn", cloud.ec2_arn("vpc", id))
                .string("cidr_block", vpc.text_of("cidrBlock"))
                .string("instance_tenancy", vpc.text_of("instanceTenancy"))
                .string("dhcp_options_id", vpc.text_of("dhcpOptionsId"))
                .string("owner_id", vpc.text_of("ownerId"))
                .set("assign_generated_ipv6_cidr_block", Value::Bool(false));
            for (attr, name) in [
                ("enable_dns_support", "enableDnsSupport"),
                ("enable_dns_hostnames", "enableDnsHostnames"),
            ] {
                let xml = expect(
                    cloud
                        .ec2(
                            "DescribeVpcAttribute",
                            Params::new().set("VpcId", id).set("Attribute", name),
                        )
                        .await,
                    &format!("reading EC2 VPC ({id}) attribute {name}"),
                )?;
                attrs.set(
                    attr,
                    Value::Bool(xml.text_at(&[name, "value"]) == Some("true")),
                );
            }
            let main = first_filtered(
                cloud,
                "DescribeRouteTables",
                &[("vpc-id", id), ("association.main", "true")],
                "routeTableSet",
                "routeTableId",
            )
            .await?;
            attrs
                .string("main_route_table_id", main.as_deref())
                .string("default_route_table_id", main.as_deref());
            let acl = first_filtered(
                cloud,
                "DescribeNetworkAcls",
                &[("vpc-id", id), ("default", "true")],
                "networkAclSet",
                "networkAclId",
            )
            .await?;
            attrs.string("default_network_acl_id", acl.as_deref());
            let group = first_filtered(
                cloud,
                "DescribeSecurityGroups",
                &[("vpc-id", id), ("group-name", "default")],
                "securityGroupInfo",
                "groupId",
            )
            .await?;
            attrs.string("default_security_group_id", group.as_deref());
            cloud.tag_attributes(&vpc.tags("tagSet"), &mut attrs);
        }
        Kind::Subnet => {
            let Some(subnet) = describe_one(
                cloud,
                kind,
                "DescribeSubnets",
                Params::new().set("SubnetId.1", id),
                "subnetSet",
                id,
            )
            .await?
            else {
                return Ok(None);
            };
            let bool_of = |name: &str| Value::Bool(subnet.text_of(name) == Some("true"));
            attrs
                .set(
                    "arn",
                    subnet
                        .text_of("subnetArn")
                        .map_or_else(|| cloud.ec2_arn("subnet", id), string),
                )
                .string("vpc_id", subnet.text_of("vpcId"))
                .string("cidr_block", subnet.text_of("cidrBlock"))
                .string("availability_zone", subnet.text_of("availabilityZone"))
                .string("availability_zone_id", subnet.text_of("availabilityZoneId"))
                .string("owner_id", subnet.text_of("ownerId"))
                .set("map_public_ip_on_launch", bool_of("mapPublicIpOnLaunch"))
                .set(
                    "assign_ipv6_address_on_creation",
                    bool_of("assignIpv6AddressOnCreation"),
                )
                .set("enable_dns64", bool_of("enableDns64"))
                .set("ipv6_native", bool_of("ipv6Native"))
                .set(
                    "map_customer_owned_ip_on_launch",
                    bool_of("mapCustomerOwnedIpOnLaunch"),
                );
            cloud.tag_attributes(&subnet.tags("tagSet"), &mut attrs);
        }
        Kind::InternetGateway => {
            let Some(gateway) = describe_one(
                cloud,
                kind,
                "DescribeInternetGateways",
                Params::new().set("InternetGatewayId.1", id),
                "internetGatewaySet",
                id,
            )
            .await?
            else {
                return Ok(None);
            };
            let vpc = gateway
                .list("attachmentSet")
                .first()
                .and_then(|a| a.text_of("vpcId"))
                .map(str::to_owned);
            attrs
                .set("arn", cloud.ec2_arn("internet-gateway", id))
                .string("owner_id", gateway.text_of("ownerId"))
                .string("vpc_id", vpc.as_deref());
            cloud.tag_attributes(&gateway.tags("tagSet"), &mut attrs);
        }
        Kind::Eip => {
            let Some(address) = describe_one(
                cloud,
                kind,
                "DescribeAddresses",
                Params::new().set("AllocationId.1", id),
                "addressesSet",
                id,
            )
            .await?
            else {
                return Ok(None);
            };
            let public_ip = address.text_of("publicIp").unwrap_or_default().to_owned();
            let private_ip = address.text_of("privateIpAddress").map(str::to_owned);
            let dashed = |ip: &str| ip.replace('.', "-");
            attrs
                .set("arn", cloud.ec2_arn("elastic-ip", id))
                .string("allocation_id", Some(id))
                .string("public_ip", Some(&public_ip))
                .string("domain", address.text_of("domain"))
                .string("association_id", address.text_of("associationId"))
                .string("network_interface", address.text_of("networkInterfaceId"))
                .string("instance", address.text_of("instanceId"))
                .string("private_ip", private_ip.as_deref())
                .string(
                    "network_border_group",
                    Some(
                        address
                            .text_of("networkBorderGroup")
                            .unwrap_or(&cloud.region),
                    ),
                )
                .string(
                    "public_ipv4_pool",
                    Some(address.text_of("publicIpv4Pool").unwrap_or("amazon")),
                )
                .string(
                    "public_dns",
                    Some(&format!(
                        "ec2-{}.{}.compute.amazonaws.com",
                        dashed(&public_ip),
                        cloud.region
                    )),
                )
                .string(
                    "private_dns",
                    private_ip
                        .as_deref()
                        .map(|ip| format!("ip-{}.{}.compute.internal", dashed(ip), cloud.region))
                        .as_deref(),
                );
            cloud.tag_attributes(&address.tags("tagSet"), &mut attrs);
        }
        Kind::NatGateway => {
            let Some(gateway) = describe_one(
                cloud,
                kind,
                "DescribeNatGateways",
                Params::new().set("NatGatewayId.1", id),
                "natGatewaySet",
                id,
            )
            .await?
            else {
                return Ok(None);
            };
            // A deleted NAT gateway stays listed for a while: it no longer exists.
            if matches!(gateway.text_of("state"), Some("deleted" | "deleting")) {
                return Ok(None);
            }
            let addresses = gateway.list("natGatewayAddressSet");
            let primary = addresses.first();
            let field = |name: &str| primary.and_then(|a| a.text_of(name)).map(str::to_owned);
            attrs
                .string("subnet_id", gateway.text_of("subnetId"))
                .string("vpc_id", gateway.text_of("vpcId"))
                .string(
                    "connectivity_type",
                    Some(gateway.text_of("connectivityType").unwrap_or("public")),
                )
                .string("availability_mode", Some("zonal"))
                .string("allocation_id", field("allocationId").as_deref())
                .string("association_id", field("associationId").as_deref())
                .string(
                    "network_interface_id",
                    field("networkInterfaceId").as_deref(),
                )
                .string("private_ip", field("privateIp").as_deref())
                .string("public_ip", field("publicIp").as_deref())
                .set("secondary_allocation_ids", Value::List(vec![]))
                .set("secondary_private_ip_addresses", Value::List(vec![]))
                .set("secondary_private_ip_address_count", Value::Number(0.0));
            cloud.tag_attributes(&gateway.tags("tagSet"), &mut attrs);
        }
        Kind::RouteTable => {
            let Some(table) = describe_one(
                cloud,
                kind,
                "DescribeRouteTables",
                Params::new().set("RouteTableId.1", id),
                "routeTableSet",
                id,
            )
            .await?
            else {
                return Ok(None);
            };
            attrs
                .set("arn", cloud.ec2_arn("route-table", id))
                .string("vpc_id", table.text_of("vpcId"))
                .string("owner_id", table.text_of("ownerId"))
                .set(
                    "propagating_vgws",
                    string_list_value(
                        &table
                            .list("propagatingVgwSet")
                            .iter()
                            .filter_map(|v| v.text_of("gatewayId"))
                            .collect::<Vec<_>>(),
                    ),
                )
                .set("route", Value::List(table_routes(&table)));
            cloud.tag_attributes(&table.tags("tagSet"), &mut attrs);
        }
        Kind::RouteTableAssociation => {
            return read_association(cloud, id).await;
        }
        _ => return Err(CloudError::Unsupported(kind.label().into())),
    }
    Ok(Some(attrs))
}

/// A route table's own routes (not the VPC's local one) as `route` blocks: every field,
/// empty where unset, as the real provider records them.
fn table_routes(table: &Xml) -> Vec<Value> {
    table
        .list("routeSet")
        .into_iter()
        .filter(|route| {
            route.text_of("gatewayId") != Some("local")
                && route.text_of("origin") != Some("CreateRouteTable")
        })
        .map(|route| {
            object(
                ROUTE_FIELDS
                    .iter()
                    .map(|(attr, _, answer)| (*attr, string(route.text_of(answer).unwrap_or(""))))
                    .collect(),
            )
        })
        .collect()
}

/// An association by its id (`rtbassoc-...`) or by the import id `subnet-.../rtb-...`
/// (or `igw-.../rtb-...`).
async fn read_association(cloud: &AwsCloud, id: &str) -> Result<Option<Attrs>, CloudError> {
    let (params, target) = match id.split_once('/') {
        Some((target, table)) => (
            Params::new().set("RouteTableId.1", table),
            Some(target.to_owned()),
        ),
        None => (
            Params::new()
                .set("Filter.1.Name", "association.route-table-association-id")
                .set("Filter.1.Value.1", id),
            None,
        ),
    };
    let Some(xml) = found(
        cloud.ec2("DescribeRouteTables", params).await,
        &format!("reading Route Table Association ({id})"),
    )?
    else {
        return Ok(None);
    };
    for table in xml.list("routeTableSet") {
        for association in table.list("associationSet") {
            let association_id = association.text_of("routeTableAssociationId");
            let subnet = association.text_of("subnetId");
            let gateway = association.text_of("gatewayId");
            let matches = match &target {
                Some(target) => subnet == Some(target) || gateway == Some(target),
                None => association_id == Some(id),
            };
            let disassociated =
                association.text_at(&["associationState", "state"]) == Some("disassociated");
            if matches && !disassociated {
                let mut attrs = Attrs::new();
                attrs
                    .string("id", association_id)
                    .string("route_table_id", table.text_of("routeTableId"))
                    .string("subnet_id", subnet)
                    .string("gateway_id", gateway);
                return Ok(Some(attrs));
            }
        }
    }
    Ok(None)
}

pub async fn update(
    cloud: &AwsCloud,
    kind: Kind,
    id: &str,
    planned: &Value,
) -> Result<(), CloudError> {
    match kind {
        Kind::Vpc => set_vpc_attributes(cloud, id, planned).await?,
        Kind::Subnet => set_subnet_attributes(cloud, id, planned).await?,
        Kind::InternetGateway => {
            let current = read(cloud, kind, id).await?.and_then(|a| {
                a.0.get("vpc_id")
                    .and_then(|v| v.as_str().map(str::to_owned))
            });
            let wanted = planned.str_attr("vpc_id").map(str::to_owned);
            if current != wanted {
                if let Some(vpc) = &current {
                    detach_gateway(cloud, id, vpc).await?;
                }
                if let Some(vpc) = &wanted {
                    attach_gateway(cloud, id, vpc).await?;
                }
            }
        }
        Kind::RouteTable => {
            let current = read(cloud, kind, id)
                .await?
                .and_then(|a| a.0.get("route").cloned())
                .unwrap_or(Value::List(vec![]));
            let destination = |route: &BTreeMap<&'static str, String>| {
                [
                    "cidr_block",
                    "ipv6_cidr_block",
                    "destination_prefix_list_id",
                ]
                .iter()
                .find_map(|d| route.get(d).map(|v| (*d, v.clone())))
            };
            let current_routes = routes(&super::object(vec![("route", current)]));
            let wanted_routes = routes(planned);
            for route in &current_routes {
                let gone_from_plan = !wanted_routes
                    .iter()
                    .any(|w| destination(w) == destination(route));
                if let (true, Some((attr, value))) = (gone_from_plan, destination(route)) {
                    let param = ROUTE_FIELDS
                        .iter()
                        .find(|(a, _, _)| *a == attr)
                        .map(|(_, p, _)| *p)
                        .unwrap_or("DestinationCidrBlock");
                    expect(
                        cloud
                            .ec2(
                                "DeleteRoute",
                                Params::new().set("RouteTableId", id).set(param, value),
                            )
                            .await,
                        &format!("deleting Route in Route Table ({id})"),
                    )?;
                }
            }
            for route in &wanted_routes {
                match current_routes
                    .iter()
                    .find(|c| destination(c) == destination(route))
                {
                    Some(existing) if existing == route => {}
                    Some(_) => put_route(cloud, id, route, "ReplaceRoute").await?,
                    None => put_route(cloud, id, route, "CreateRoute").await?,
                }
            }
        }
        _ => {}
    }
    if resource_type(kind).is_some() {
        update_tags(cloud, kind, id, planned).await?;
    }
    Ok(())
}

async fn update_tags(
    cloud: &AwsCloud,
    kind: Kind,
    id: &str,
    planned: &Value,
) -> Result<(), CloudError> {
    let what = format!("updating tags of {} ({id})", kind.label());
    let xml = expect(
        cloud
            .ec2(
                "DescribeTags",
                Params::new()
                    .set("Filter.1.Name", "resource-id")
                    .set("Filter.1.Value.1", id),
            )
            .await,
        &what,
    )?;
    let current = xml.tags("tagSet");
    let (set, removed) = tag_changes(&current, &cloud.tags_all(planned));
    if !removed.is_empty() {
        let mut params = Params::new().set("ResourceId.1", id);
        for (i, key) in removed.iter().enumerate() {
            params = params.set(&format!("Tag.{}.Key", i + 1), key.clone());
        }
        expect(cloud.ec2("DeleteTags", params).await, &what)?;
    }
    if !set.is_empty() {
        let params = Params::new().set("ResourceId.1", id).tags("Tag", &set);
        expect(cloud.ec2("CreateTags", params).await, &what)?;
    }
    Ok(())
}

async fn detach_gateway(cloud: &AwsCloud, id: &str, vpc: &str) -> Result<(), CloudError> {
    gone(
        cloud
            .ec2(
                "DetachInternetGateway",
                Params::new().set("InternetGatewayId", id).set("VpcId", vpc),
            )
            .await,
        &format!("detaching EC2 Internet Gateway ({id}) from VPC ({vpc})"),
    )
}

pub async fn delete(
    cloud: &AwsCloud,
    kind: Kind,
    id: &str,
    state: &Value,
) -> Result<(), CloudError> {
    let what = format!("deleting {} ({id})", kind.label());
    let (action, params) = match kind {
        Kind::Vpc => ("DeleteVpc", Params::new().set("VpcId", id)),
        Kind::Subnet => ("DeleteSubnet", Params::new().set("SubnetId", id)),
        Kind::InternetGateway => {
            if let Some(vpc) = state.str_attr("vpc_id") {
                detach_gateway(cloud, id, vpc).await?;
            }
            (
                "DeleteInternetGateway",
                Params::new().set("InternetGatewayId", id),
            )
        }
        Kind::Eip => ("ReleaseAddress", Params::new().set("AllocationId", id)),
        Kind::NatGateway => {
            gone(
                cloud
                    .ec2("DeleteNatGateway", Params::new().set("NatGatewayId", id))
                    .await,
                &what,
            )?;
            // Its elastic IP is released only once the gateway is gone.
            return cloud
                .wait_until(
                    &format!("EC2 NAT Gateway ({id}) delete"),
                    NAT_WAIT,
                    || async { Ok(read(cloud, kind, id).await?.is_none()) },
                )
                .await;
        }
        Kind::RouteTable => ("DeleteRouteTable", Params::new().set("RouteTableId", id)),
        Kind::RouteTableAssociation => (
            "DisassociateRouteTable",
            Params::new().set("AssociationId", id),
        ),
        _ => return Err(CloudError::Unsupported(kind.label().into())),
    };
    gone(cloud.ec2(action, params).await, &what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_skip_the_local_one_and_record_every_field() {
        let table = Xml::parse(
            "<item><routeSet>\
               <item><destinationCidrBlock>10.0.0.0/16</destinationCidrBlock><gatewayId>local</gatewayId><origin>CreateRouteTable</origin></item>\
               <item><destinationCidrBlock>0.0.0.0/0</destinationCidrBlock><natGatewayId>nat-1</natGatewayId><origin>CreateRoute</origin></item>\
             </routeSet></item>",
        )
        .unwrap();
        let recorded = table_routes(&table);
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].str_attr("nat_gateway_id"), Some("nat-1"));
        assert_eq!(recorded[0].str_attr("gateway_id"), Some(""));
        let planned = object(vec![("route", Value::List(recorded))]);
        let planned_routes = routes(&planned);
        assert_eq!(planned_routes[0]["cidr_block"], "0.0.0.0/0");
        assert_eq!(planned_routes[0]["nat_gateway_id"], "nat-1");
        assert!(!planned_routes[0].contains_key("gateway_id"));
    }
}
