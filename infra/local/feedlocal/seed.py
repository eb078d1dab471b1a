"""Demo data: a supermarket catalog, stores, households and their shopping history.

`generate` is pure and deterministic: the same arguments give the same dataset, and the only time it
knows is the `now` passed in. It writes nothing; loading the dataset into the database is another
module's job.

The shape of the history is what the feed needs to be worth looking at: each household rebuys its
habitual items on its own cycle (milk weekly, coffee monthly, detergent every other month), adds a
few impulse items per trip, and item popularity follows a Zipf-like curve, so every store has clear
best sellers and a long tail.
"""

from __future__ import annotations

import itertools
import math
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from feedcore.api.catalog_models import CatalogItem, Store, StoreAvailability, User
from feedcore.api.event_models import AddToCartEvent, ClickEvent, PurchaseEvent, PurchaseLine

# --- catalog tables ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductLine:
    """One product of the catalog table; each brand × size of it becomes one catalog item."""

    product: str
    brands: tuple[str | None, ...]
    sizes: tuple[tuple[str, str], ...]  # (size label, shelf price in USD of a mainstream brand)
    tags: tuple[str, ...] = ()
    staple: bool = False  # every store stocks it


STORE_BRAND = "Market Pantry"
UNBRANDED: tuple[str | None, ...] = (None,)
VEGAN = ("vegan",)
GLUTEN_FREE = ("gluten-free",)
PLANT_BASED = VEGAN + GLUTEN_FREE
ORGANIC = ("organic",)
LOCAL = ("local",)
ALCOHOL = ("alcohol",)

# Shelf price of a brand relative to a mainstream brand (1.0 when absent).
BRAND_PRICE_FACTOR: dict[str, Decimal] = {
    STORE_BRAND: Decimal("0.80"),
    "Organic Valley": Decimal("1.35"),
    "Horizon Organic": Decimal("1.25"),
    "Stonyfield Organic": Decimal("1.20"),
    "Vital Farms": Decimal("1.60"),
    "Pete and Gerry's": Decimal("1.35"),
    "Kerrygold": Decimal("1.30"),
    "Dave's Killer Bread": Decimal("1.25"),
    "Rao's Homemade": Decimal("2.00"),
    "De Cecco": Decimal("1.25"),
    "Muir Glen": Decimal("1.20"),
    "Bonne Maman": Decimal("1.25"),
    "California Olive Ranch": Decimal("1.10"),
    "Simply Organic": Decimal("1.40"),
    "Peet's Coffee": Decimal("1.15"),
    "Stumptown Coffee": Decimal("1.35"),
    "Folgers": Decimal("0.75"),
    "Kettle Brand": Decimal("1.05"),
    "Siete": Decimal("1.40"),
    "The Honest Company": Decimal("1.20"),
    "Seventh Generation": Decimal("1.10"),
    "Mrs. Meyer's": Decimal("1.25"),
}

# Tags every item of a brand carries, on top of the product's own.
BRAND_TAGS: dict[str, tuple[str, ...]] = {
    "Organic Valley": ("organic",),
    "Horizon Organic": ("organic",),
    "Stonyfield Organic": ("organic",),
    "Pete and Gerry's": ("organic",),
    "Dave's Killer Bread": ("organic", "vegan"),
    "Muir Glen": ("organic",),
    "Simply Organic": ("organic",),
    "Lundberg": ("organic",),
    "Plum Organics": ("organic",),
    "Once Upon a Farm": ("organic",),
    "Oatly": ("vegan",),
    "Califia Farms": ("vegan",),
    "Canyon Bakehouse": ("gluten-free",),
    "Siete": ("gluten-free", "vegan"),
    "Banza": ("gluten-free",),
    "Green Acres Farm": ("local",),
    "In-Store Bakery": ("local",),
}

# department -> aisle -> product lines. Item ids follow this order: append, don't insert, to keep them.
# fmt: off
CATALOG: dict[str, dict[str, tuple[ProductLine, ...]]] = {
    "Dairy & Eggs": {
        "Milk": (
            ProductLine("Whole Milk", ("Organic Valley", "Horizon Organic", STORE_BRAND),
                        (("1 gal", "4.29"), ("half gal", "2.79")), GLUTEN_FREE, staple=True),
            ProductLine("2% Reduced Fat Milk", ("Horizon Organic", STORE_BRAND),
                        (("1 gal", "4.29"), ("half gal", "2.79")), GLUTEN_FREE, staple=True),
            ProductLine("Oat Milk", ("Oatly", "Califia Farms"), (("64 oz", "4.99"),), PLANT_BASED),
            ProductLine("Unsweetened Almond Milk", ("Silk", "Califia Farms"),
                        (("half gal", "3.49"),), PLANT_BASED),
        ),
        "Yogurt": (
            ProductLine("Plain Greek Yogurt", ("Fage", "Chobani", "Oikos"),
                        (("32 oz", "5.99"), ("5.3 oz", "1.39")), GLUTEN_FREE),
            ProductLine("Vanilla Yogurt", ("Chobani", "Stonyfield Organic"), (("32 oz", "4.49"),)),
        ),
        "Cheese": (
            ProductLine("Sharp Cheddar", ("Tillamook", "Cabot"), (("8 oz", "3.99"), ("2 lb", "12.99"))),
            ProductLine("Shredded Mozzarella", ("Sargento", STORE_BRAND), (("8 oz", "3.29"),)),
            ProductLine("Parmigiano Reggiano", ("BelGioioso",), (("8 oz", "7.99"),)),
            ProductLine("Cream Cheese", ("Philadelphia",), (("8 oz", "2.99"),)),
        ),
        "Eggs": (
            ProductLine("Large Brown Eggs", ("Vital Farms", "Pete and Gerry's", STORE_BRAND),
                        (("dozen", "4.49"), ("18 ct", "6.49")), GLUTEN_FREE, staple=True),
        ),
        "Butter": (
            ProductLine("Unsalted Butter", ("Kerrygold", "Land O'Lakes", STORE_BRAND), (("16 oz", "5.49"),),
                        staple=True),
            ProductLine("Salted Butter", ("Kerrygold", "Land O'Lakes"), (("16 oz", "5.49"),), staple=True),
        ),
    },
    "Produce": {
        "Fresh Fruit": (
            ProductLine("Bananas", UNBRANDED, (("per lb", "0.69"),), PLANT_BASED, staple=True),
            ProductLine("Organic Bananas", UNBRANDED,
                        (("per lb", "0.89"),), PLANT_BASED + ORGANIC, staple=True),
            ProductLine("Hass Avocados", UNBRANDED, (("each", "1.49"), ("4 ct bag", "4.99")), PLANT_BASED),
            ProductLine("Gala Apples", UNBRANDED, (("3 lb bag", "4.99"),), PLANT_BASED),
            ProductLine("Honeycrisp Apples", UNBRANDED, (("per lb", "2.99"),), PLANT_BASED + LOCAL),
            ProductLine("Strawberries", UNBRANDED, (("16 oz", "3.99"),), PLANT_BASED),
            ProductLine("Organic Strawberries", UNBRANDED, (("16 oz", "5.49"),), PLANT_BASED + ORGANIC),
            ProductLine("Blueberries", UNBRANDED, (("6 oz", "3.49"), ("18 oz", "6.99")), PLANT_BASED),
            ProductLine("Navel Oranges", UNBRANDED, (("4 lb bag", "5.99"),), PLANT_BASED),
            ProductLine("Lemons", UNBRANDED, (("each", "0.69"),), PLANT_BASED),
            ProductLine("Limes", UNBRANDED, (("each", "0.39"),), PLANT_BASED),
            ProductLine("Red Seedless Grapes", UNBRANDED, (("per lb", "2.99"),), PLANT_BASED),
            ProductLine("Clementines", UNBRANDED, (("3 lb bag", "5.49"),), PLANT_BASED),
        ),
        "Fresh Vegetables": (
            ProductLine("Baby Spinach", UNBRANDED, (("5 oz", "2.99"),), PLANT_BASED),
            ProductLine("Organic Baby Spinach", UNBRANDED, (("5 oz", "3.99"),), PLANT_BASED + ORGANIC),
            ProductLine("Romaine Hearts", UNBRANDED, (("3 ct", "3.49"),), PLANT_BASED),
            ProductLine("Broccoli Crowns", UNBRANDED, (("per lb", "1.99"),), PLANT_BASED),
            ProductLine("Carrots", UNBRANDED, (("2 lb bag", "1.99"),), PLANT_BASED),
            ProductLine("Organic Carrots", UNBRANDED, (("2 lb bag", "2.49"),), PLANT_BASED + ORGANIC),
            ProductLine("Yellow Onions", UNBRANDED, (("3 lb bag", "3.49"),), PLANT_BASED, staple=True),
            ProductLine("Red Onion", UNBRANDED, (("each", "1.09"),), PLANT_BASED),
            ProductLine("Russet Potatoes", UNBRANDED, (("5 lb bag", "4.49"),), PLANT_BASED),
            ProductLine("Sweet Potatoes", UNBRANDED, (("per lb", "1.49"),), PLANT_BASED),
            ProductLine("Roma Tomatoes", UNBRANDED, (("per lb", "1.79"),), PLANT_BASED),
            ProductLine("Cherry Tomatoes", UNBRANDED, (("10 oz", "3.49"),), PLANT_BASED + LOCAL),
            ProductLine("Cucumbers", UNBRANDED, (("each", "0.89"),), PLANT_BASED),
            ProductLine("Red Bell Peppers", UNBRANDED, (("each", "1.49"),), PLANT_BASED),
            ProductLine("Garlic", UNBRANDED, (("3 ct", "1.99"),), PLANT_BASED),
            ProductLine("Zucchini", UNBRANDED, (("per lb", "1.69"),), PLANT_BASED),
            ProductLine("Celery", UNBRANDED, (("bunch", "2.29"),), PLANT_BASED),
            ProductLine("White Mushrooms", UNBRANDED, (("8 oz", "2.49"),), PLANT_BASED),
        ),
        "Fresh Herbs": (
            ProductLine("Cilantro", ("Green Acres Farm",), (("bunch", "0.99"),), PLANT_BASED),
            ProductLine("Italian Parsley", ("Green Acres Farm",), (("bunch", "0.99"),), PLANT_BASED),
            ProductLine("Basil", ("Green Acres Farm",), (("0.75 oz", "2.49"),), PLANT_BASED),
            ProductLine("Mint", ("Green Acres Farm",), (("0.75 oz", "2.49"),), PLANT_BASED),
            ProductLine("Ginger Root", UNBRANDED, (("per lb", "3.99"),), PLANT_BASED),
        ),
    },
    "Bakery": {
        "Bread": (
            ProductLine("Whole Wheat Bread", ("Dave's Killer Bread", "Nature's Own", STORE_BRAND),
                        (("24 oz", "4.49"),), staple=True),
            ProductLine("White Sandwich Bread", ("Wonder", STORE_BRAND), (("20 oz", "2.99"),), staple=True),
            ProductLine("Sourdough Loaf", ("In-Store Bakery",), (("24 oz", "4.99"),), VEGAN),
            ProductLine("Gluten-Free Sandwich Bread", ("Canyon Bakehouse", "Schär"), (("18 oz", "6.49"),)),
            ProductLine("Plain Bagels", ("Thomas'", "In-Store Bakery"), (("6 ct", "3.99"),)),
            ProductLine("English Muffins", ("Thomas'",), (("6 ct", "3.49"),)),
            ProductLine("Flour Tortillas", ("Mission", "Guerrero"), (("10 ct", "3.29"),)),
            ProductLine("Corn Tortillas", ("Mission",), (("30 ct", "2.99"),), PLANT_BASED),
        ),
        "Pastries": (
            ProductLine("Butter Croissants", ("In-Store Bakery",), (("4 ct", "5.99"),)),
            ProductLine("Blueberry Muffins", ("In-Store Bakery",), (("4 ct", "5.49"),)),
            ProductLine("Chocolate Chip Cookies", ("In-Store Bakery",), (("12 ct", "4.99"),)),
        ),
    },
    "Meat & Seafood": {
        "Poultry": (
            ProductLine("Boneless Skinless Chicken Breast", ("Perdue", "Foster Farms", STORE_BRAND),
                        (("1.5 lb", "7.49"),), GLUTEN_FREE, staple=True),
            ProductLine("Chicken Thighs", ("Perdue", "Foster Farms"), (("2 lb", "6.99"),), GLUTEN_FREE),
            ProductLine("Whole Chicken", ("Mary's Free Range",), (("4 lb", "9.99"),), GLUTEN_FREE + LOCAL),
            ProductLine("93% Lean Ground Turkey", ("Jennie-O",), (("16 oz", "5.99"),), GLUTEN_FREE),
        ),
        "Beef & Pork": (
            ProductLine("85% Lean Ground Beef", ("Laura's Lean", STORE_BRAND),
                        (("16 oz", "5.99"),), GLUTEN_FREE),
            ProductLine("Ribeye Steak", UNBRANDED, (("per lb", "14.99"),), GLUTEN_FREE),
            ProductLine("Bone-In Pork Chops", UNBRANDED, (("per lb", "4.49"),), GLUTEN_FREE),
            ProductLine("Thick Cut Bacon", ("Applegate", "Oscar Mayer", "Smithfield"), (("12 oz", "6.49"),)),
            ProductLine("Mild Italian Sausage", ("Johnsonville",), (("19 oz", "5.99"),)),
        ),
        "Seafood": (
            ProductLine("Atlantic Salmon Fillet", UNBRANDED, (("per lb", "11.99"),), GLUTEN_FREE),
            ProductLine("Wild Sockeye Salmon Fillet", UNBRANDED, (("per lb", "15.99"),), GLUTEN_FREE),
            ProductLine("Raw Shrimp 31-40 ct", (STORE_BRAND,), (("2 lb", "17.99"),), GLUTEN_FREE),
            ProductLine("Cod Fillet", UNBRANDED, (("per lb", "10.99"),), GLUTEN_FREE),
        ),
    },
    "Deli": {
        "Deli": (
            ProductLine("Oven Roasted Turkey Breast", ("Boar's Head", "Applegate"), (("8 oz", "6.99"),)),
            ProductLine("Genoa Salami", ("Boar's Head",), (("8 oz", "6.49"),)),
            ProductLine("Classic Hummus", ("Sabra", "Cedar's"), (("10 oz", "4.29"),), PLANT_BASED),
        ),
    },
    "Pantry": {
        "Pasta": (
            ProductLine("Spaghetti", ("Barilla", "De Cecco", STORE_BRAND), (("16 oz", "1.99"),), VEGAN),
            ProductLine("Penne Rigate", ("Barilla", "De Cecco", STORE_BRAND), (("16 oz", "1.99"),), VEGAN),
            ProductLine("Rotini", ("Barilla", STORE_BRAND), (("16 oz", "1.99"),), VEGAN),
            ProductLine("Chickpea Rotini", ("Banza",), (("8 oz", "3.49"),), VEGAN),
            ProductLine("Gluten Free Spaghetti", ("Barilla",), (("12 oz", "2.99"),), PLANT_BASED),
            ProductLine("Macaroni & Cheese", ("Kraft", "Annie's"), (("6 oz", "1.49"),)),
        ),
        "Rice & Grains": (
            ProductLine("Jasmine Rice", ("Mahatma", STORE_BRAND),
                        (("2 lb", "3.99"), ("5 lb", "8.49")), PLANT_BASED),
            ProductLine("Long Grain White Rice", ("Carolina",), (("5 lb", "5.49"),), PLANT_BASED),
            ProductLine("Short Grain Brown Rice", ("Lundberg",), (("2 lb", "4.49"),), PLANT_BASED),
            ProductLine("Quinoa", ("Bob's Red Mill",), (("26 oz", "7.99"),), PLANT_BASED),
        ),
        "Canned Goods": (
            ProductLine("Black Beans", ("Goya", "Bush's", STORE_BRAND), (("15 oz", "1.19"),), PLANT_BASED),
            ProductLine("Chickpeas", ("Goya", STORE_BRAND), (("15.5 oz", "1.19"),), PLANT_BASED),
            ProductLine("Diced Tomatoes", ("Muir Glen", "Hunt's", STORE_BRAND),
                        (("14.5 oz", "1.49"),), PLANT_BASED),
            ProductLine("Chunk Light Tuna", ("StarKist", "Bumble Bee"), (("5 oz", "1.29"),), GLUTEN_FREE),
            ProductLine("Chicken Noodle Soup", ("Campbell's", "Progresso"), (("18.6 oz", "2.79"),)),
            ProductLine("Coconut Milk", ("Thai Kitchen",), (("13.66 oz", "2.49"),), PLANT_BASED),
        ),
        "Sauces & Condiments": (
            ProductLine("Marinara Sauce", ("Rao's Homemade", "Prego", STORE_BRAND),
                        (("24 oz", "3.99"),), PLANT_BASED),
            ProductLine("Tomato Ketchup", ("Heinz",), (("32 oz", "3.99"),), PLANT_BASED),
            ProductLine("Yellow Mustard", ("French's",), (("14 oz", "1.99"),), PLANT_BASED),
            ProductLine("Real Mayonnaise", ("Hellmann's",), (("30 oz", "5.99"),), GLUTEN_FREE),
            ProductLine("Soy Sauce", ("Kikkoman",), (("15 oz", "3.29"),), VEGAN),
            ProductLine("Sriracha Hot Chili Sauce", ("Huy Fong",), (("17 oz", "4.49"),), PLANT_BASED),
            ProductLine("Creamy Peanut Butter", ("Jif", "Skippy", "Smucker's Natural"), (("16 oz", "3.49"),),
                        PLANT_BASED),
            ProductLine("Strawberry Preserves", ("Smucker's", "Bonne Maman"),
                        (("13 oz", "3.99"),), PLANT_BASED),
            ProductLine("Medium Chunky Salsa", ("Pace", "Tostitos"), (("16 oz", "3.49"),), PLANT_BASED),
            ProductLine("Clover Honey", ("Sue Bee",), (("12 oz", "4.99"),), GLUTEN_FREE),
        ),
        "Baking & Spices": (
            ProductLine("All-Purpose Flour", ("King Arthur", "Gold Medal"), (("5 lb", "4.49"),), VEGAN),
            ProductLine("Granulated Sugar", ("C&H", "Domino"), (("4 lb", "3.99"),), PLANT_BASED),
            ProductLine("Ground Cinnamon", ("McCormick", "Simply Organic"),
                        (("2.37 oz", "3.49"),), PLANT_BASED),
            ProductLine("Ground Black Pepper", ("McCormick",), (("3 oz", "4.29"),), PLANT_BASED),
            ProductLine("Kosher Salt", ("Diamond Crystal", "Morton"), (("3 lb", "3.99"),), PLANT_BASED),
            ProductLine("Garlic Powder", ("McCormick",), (("3.12 oz", "3.29"),), PLANT_BASED),
            ProductLine("Pure Vanilla Extract", ("McCormick",), (("2 oz", "8.99"),), PLANT_BASED),
            ProductLine("Baking Soda", ("Arm & Hammer",), (("1 lb", "1.29"),), PLANT_BASED),
        ),
        "Oils & Vinegars": (
            ProductLine("Extra Virgin Olive Oil", ("California Olive Ranch", "Colavita", STORE_BRAND),
                        (("16.9 oz", "8.99"), ("33.8 oz", "14.99")), PLANT_BASED),
            ProductLine("Avocado Oil", ("Chosen Foods",), (("16.9 oz", "9.99"),), PLANT_BASED),
            ProductLine("Canola Oil", ("Crisco", STORE_BRAND), (("48 oz", "4.99"),), PLANT_BASED),
            ProductLine("Balsamic Vinegar", ("Colavita",), (("17 oz", "5.49"),), PLANT_BASED),
            ProductLine("Apple Cider Vinegar", ("Bragg",), (("32 oz", "5.99"),), PLANT_BASED + ORGANIC),
        ),
    },
    "Breakfast": {
        "Cereal": (
            ProductLine("Cheerios", ("General Mills",), (("8.9 oz", "4.29"), ("18 oz", "6.49")), GLUTEN_FREE),
            ProductLine("Honey Nut Cheerios", ("General Mills",), (("10.8 oz", "4.49"),), GLUTEN_FREE),
            ProductLine("Frosted Flakes", ("Kellogg's",), (("13.5 oz", "4.79"),)),
            ProductLine("Raisin Bran", ("Kellogg's",), (("16.6 oz", "4.99"),)),
            ProductLine("Honey Bunches of Oats", ("Post",), (("14.5 oz", "4.49"),)),
            ProductLine("Vanilla Almond Granola", ("Bear Naked", "Purely Elizabeth"), (("12 oz", "5.99"),)),
            ProductLine("Old Fashioned Oats", ("Quaker", "Bob's Red Mill"), (("42 oz", "5.99"),), VEGAN),
        ),
        "Coffee": (
            ProductLine("Medium Roast Ground Coffee", ("Peet's Coffee", "Starbucks", "Folgers", STORE_BRAND),
                        (("12 oz", "9.99"),), PLANT_BASED),
            ProductLine("Dark Roast Whole Bean Coffee", ("Peet's Coffee", "Stumptown Coffee"),
                        (("12 oz", "11.99"),),
                        PLANT_BASED),
            ProductLine("Medium Roast K-Cup Pods", ("Green Mountain", "Starbucks"),
                        (("12 ct", "8.99"),), PLANT_BASED),
        ),
        "Tea": (
            ProductLine("Green Tea", ("Bigelow",), (("20 ct", "3.49"),), PLANT_BASED),
            ProductLine("English Breakfast Tea", ("Twinings",), (("20 ct", "4.49"),), PLANT_BASED),
            ProductLine("Chamomile Herbal Tea", ("Celestial Seasonings",), (("20 ct", "3.49"),), PLANT_BASED),
        ),
        "Pancakes & Syrup": (
            ProductLine("Buttermilk Pancake Mix", ("Krusteaz", "Bisquick"), (("32 oz", "3.99"),)),
            ProductLine("Pure Maple Syrup", ("Maple Grove Farms", STORE_BRAND),
                        (("12.5 oz", "8.99"),), PLANT_BASED),
        ),
    },
    "Snacks": {
        "Chips": (
            ProductLine("Classic Potato Chips", ("Lay's", "Kettle Brand", "Cape Cod"), (("8 oz", "4.29"),),
                        GLUTEN_FREE),
            ProductLine("Tortilla Chips", ("Tostitos", "Siete", STORE_BRAND),
                        (("13 oz", "4.49"),), GLUTEN_FREE),
            ProductLine("Pretzel Twists", ("Rold Gold", "Snyder's of Hanover"), (("16 oz", "3.99"),), VEGAN),
            ProductLine("Sea Salt Popcorn", ("SkinnyPop",), (("4.4 oz", "3.99"),), PLANT_BASED),
        ),
        "Crackers & Cookies": (
            ProductLine("Goldfish Cheddar Crackers", ("Pepperidge Farm",), (("6.6 oz", "2.99"),)),
            ProductLine("Original Triscuit", ("Nabisco",), (("8.5 oz", "3.99"),), VEGAN),
            ProductLine("Ritz Crackers", ("Nabisco",), (("13.7 oz", "4.49"),)),
            ProductLine("Oreo Cookies", ("Nabisco",), (("14.3 oz", "4.99"),), VEGAN),
            ProductLine("Honey Graham Crackers", ("Honey Maid",), (("14.4 oz", "4.29"),)),
        ),
        "Nuts & Bars": (
            ProductLine("Whole Natural Almonds", ("Blue Diamond",), (("16 oz", "7.99"),), PLANT_BASED),
            ProductLine("Deluxe Mixed Nuts", ("Planters",), (("15 oz", "8.99"),), PLANT_BASED),
            ProductLine("Chewy Granola Bars", ("Quaker", "Nature Valley"), (("8 ct", "3.49"),)),
            ProductLine("Dark Chocolate Nuts & Sea Salt Bars", ("KIND",), (("6 ct", "6.99"),), GLUTEN_FREE),
            ProductLine("Chocolate Sea Salt Protein Bars", ("RXBAR",), (("5 ct", "9.99"),), GLUTEN_FREE),
        ),
        "Candy": (
            ProductLine("70% Dark Chocolate Bar", ("Lindt", "Ghirardelli"), (("3.5 oz", "3.49"),)),
        ),
    },
    "Frozen": {
        "Frozen Meals & Pizza": (
            ProductLine("Rising Crust Pepperoni Pizza", ("DiGiorno",), (("27.5 oz", "7.99"),)),
            ProductLine("Thin Crust Margherita Pizza", ("Newman's Own",), (("14.5 oz", "7.49"),)),
            ProductLine("Cheese Enchilada Meal", ("Amy's",), (("9 oz", "5.49"),), GLUTEN_FREE + ORGANIC),
            ProductLine("Chicken Potstickers", ("Ling Ling",), (("24 oz", "8.99"),)),
        ),
        "Frozen Vegetables & Fruit": (
            ProductLine("Sweet Peas", ("Birds Eye", STORE_BRAND), (("12 oz", "1.99"),), PLANT_BASED),
            ProductLine("Broccoli Florets", ("Birds Eye", "Green Giant"), (("12 oz", "2.29"),), PLANT_BASED),
            ProductLine("Mixed Berries", (STORE_BRAND,), (("32 oz", "10.99"),), PLANT_BASED),
            ProductLine("Wild Blueberries", ("Wyman's",), (("15 oz", "4.99"),), PLANT_BASED),
        ),
        "Ice Cream": (
            ProductLine("Vanilla Bean Ice Cream", ("Tillamook", "Häagen-Dazs"), (("48 oz", "5.99"),)),
            ProductLine("Chocolate Chip Cookie Dough Ice Cream", ("Ben & Jerry's",), (("16 oz", "5.99"),)),
        ),
        "Frozen Breakfast": (
            ProductLine("Homestyle Waffles", ("Eggo",), (("10 ct", "3.49"),)),
        ),
    },
    "Beverages": {
        "Water": (
            ProductLine("Lime Sparkling Water", ("LaCroix", "Bubly", STORE_BRAND), (("12 pk 12 oz", "5.99"),),
                        PLANT_BASED),
            ProductLine("Spring Water", ("Arrowhead", STORE_BRAND),
                        (("24 pk 16.9 oz", "5.99"),), PLANT_BASED),
        ),
        "Juice": (
            ProductLine("No Pulp Orange Juice", ("Tropicana", "Simply Orange", STORE_BRAND),
                        (("52 oz", "4.49"),),
                        PLANT_BASED),
            ProductLine("Apple Juice", ("Mott's",), (("64 oz", "3.49"),), PLANT_BASED),
            ProductLine("Cold-Pressed Green Juice", ("Suja",), (("12 oz", "4.99"),), PLANT_BASED + ORGANIC),
        ),
        "Soda": (
            ProductLine("Classic", ("Coca-Cola",), (("12 pk 12 oz", "7.99"), ("2 L", "2.99")), PLANT_BASED),
            ProductLine("Zero Sugar", ("Coca-Cola",), (("12 pk 12 oz", "7.99"),), PLANT_BASED),
            ProductLine("Cola", ("Pepsi",), (("2 L", "2.99"),), PLANT_BASED),
            ProductLine("Ginger Ale", ("Canada Dry", "Schweppes"), (("12 pk 12 oz", "6.49"),), PLANT_BASED),
            ProductLine("Ginger Kombucha", ("GT's", "Health-Ade"),
                        (("16 oz", "3.99"),), PLANT_BASED + ORGANIC),
        ),
    },
    "Beer & Wine": {
        "Beer": (
            ProductLine("Pale Ale", ("Sierra Nevada",),
                        (("6 pk 12 oz", "10.99"), ("12 pk 12 oz", "18.99")), ALCOHOL),
            ProductLine("IPA", ("Lagunitas",), (("6 pk 12 oz", "10.99"),), ALCOHOL),
            ProductLine("Especial", ("Modelo",), (("12 pk 12 oz", "17.99"),), ALCOHOL),
            ProductLine("Belgian White", ("Blue Moon",), (("6 pk 12 oz", "10.49"),), ALCOHOL),
            ProductLine("Draught Stout", ("Guinness",), (("4 pk 14.9 oz", "9.99"),), ALCOHOL),
        ),
        "Wine": (
            ProductLine("Cabernet Sauvignon", ("Josh Cellars", "Bogle"), (("750 ml", "14.99"),), ALCOHOL),
            ProductLine("Pinot Noir", ("Meiomi", "Mark West"), (("750 ml", "16.99"),), ALCOHOL),
            ProductLine("Sauvignon Blanc", ("Kim Crawford", "Oyster Bay"), (("750 ml", "13.99"),), ALCOHOL),
            ProductLine("Chardonnay", ("Kendall-Jackson", "La Crema"), (("750 ml", "15.99"),), ALCOHOL),
            ProductLine("Prosecco", ("La Marca",), (("750 ml", "15.99"),), ALCOHOL),
        ),
    },
    "Household": {
        "Paper Goods": (
            ProductLine("Paper Towels", ("Bounty", STORE_BRAND), (("6 double rolls", "15.99"),)),
            ProductLine("Toilet Paper", ("Charmin", "Cottonelle", "Seventh Generation"),
                        (("12 mega rolls", "16.99"),)),
            ProductLine("Facial Tissues", ("Kleenex", "Puffs"), (("3 pk", "5.99"),)),
        ),
        "Laundry": (
            ProductLine("Liquid Laundry Detergent", ("Tide", "Persil", "Seventh Generation"),
                        (("92 oz", "13.99"),)),
            ProductLine("Laundry Detergent Pacs", ("Tide", "Gain"), (("42 ct", "13.99"),)),
            ProductLine("Dryer Sheets", ("Bounce",), (("160 ct", "7.99"),)),
        ),
        "Cleaning": (
            ProductLine("Dish Soap", ("Dawn", "Seventh Generation", "Mrs. Meyer's"), (("19.4 oz", "3.49"),)),
            ProductLine("Dishwasher Detergent Pacs", ("Cascade", "Finish"), (("43 ct", "13.99"),)),
            ProductLine("All-Purpose Cleaner", ("Method", "Mrs. Meyer's"), (("28 oz", "4.49"),)),
            ProductLine("Tall Kitchen Trash Bags 13 gal", ("Glad", "Hefty"), (("40 ct", "10.99"),)),
            ProductLine("Disinfecting Wipes", ("Clorox", "Lysol"), (("75 ct", "6.49"),)),
            ProductLine("Aluminum Foil", ("Reynolds Wrap",), (("75 sq ft", "5.49"),)),
        ),
    },
    "Personal Care": {
        "Oral Care": (
            ProductLine("Fluoride Toothpaste", ("Colgate", "Crest", "Tom's of Maine"), (("4 oz", "3.99"),)),
            ProductLine("Antiseptic Mouthwash", ("Listerine",), (("1 L", "6.99"),)),
            ProductLine("Mint Dental Floss", ("Oral-B",), (("54 yd", "3.49"),)),
        ),
        "Bath & Body": (
            ProductLine("Moisturizing Body Wash", ("Dove", "Olay", "Native"), (("22 oz", "7.99"),)),
            ProductLine("Daily Moisture Shampoo", ("Pantene", "Head & Shoulders", "Suave"),
                        (("12 oz", "6.99"),)),
            ProductLine("Daily Moisture Conditioner", ("Pantene",), (("12 oz", "6.99"),)),
            ProductLine("Deodorant", ("Native", "Dove"), (("2.6 oz", "8.99"),)),
        ),
        "Health": (
            ProductLine("Ibuprofen Tablets 200 mg", ("Advil", STORE_BRAND), (("100 ct", "10.99"),)),
            ProductLine("Adhesive Bandages", ("Band-Aid",), (("30 ct", "4.49"),)),
        ),
    },
    "Baby": {
        "Diapers & Wipes": (
            ProductLine("Diapers Size 3", ("Pampers", "Huggies", "The Honest Company"),
                        (("84 ct", "27.99"),)),
            ProductLine("Diapers Size 4", ("Pampers", "Huggies", "The Honest Company"),
                        (("76 ct", "27.99"),)),
            ProductLine("Baby Wipes", ("Pampers", "Huggies", "WaterWipes"), (("216 ct", "8.99"),)),
        ),
        "Baby Food & Formula": (
            ProductLine("Apple Banana Baby Food Pouch", ("Plum Organics", "Once Upon a Farm"),
                        (("4 oz", "1.79"),), PLANT_BASED),
            ProductLine("Infant Formula", ("Similac", "Enfamil"), (("12.4 oz", "19.99"),)),
            ProductLine("Banana Puffs", ("Happy Baby",), (("2.1 oz", "3.99"),), ORGANIC),
        ),
    },
}
# fmt: on

# Items the catalog still lists but no longer sells (active=False); nobody buys them in the history.
DISCONTINUED_ITEMS = frozenset(
    {
        "Pepsi Cola 2 L",
        "Thomas' English Muffins 6 ct",
        "Market Pantry Rotini 16 oz",
        "Newman's Own Thin Crust Margherita Pizza 14.5 oz",
        "Post Honey Bunches of Oats 14.5 oz",
        "Oral-B Mint Dental Floss 54 yd",
    }
)

# How many days a household takes to use up an item, by aisle: the range its own cycle is drawn from.
REPURCHASE_CYCLE_DAYS: dict[str, tuple[int, int]] = {
    "Milk": (5, 9),
    "Yogurt": (6, 10),
    "Cheese": (10, 18),
    "Eggs": (6, 10),
    "Butter": (14, 24),
    "Fresh Fruit": (5, 9),
    "Fresh Vegetables": (5, 9),
    "Fresh Herbs": (7, 14),
    "Bread": (5, 9),
    "Pastries": (7, 14),
    "Poultry": (7, 12),
    "Beef & Pork": (8, 14),
    "Seafood": (10, 18),
    "Deli": (6, 10),
    "Pasta": (12, 21),
    "Rice & Grains": (21, 35),
    "Canned Goods": (14, 28),
    "Sauces & Condiments": (21, 35),
    "Baking & Spices": (45, 75),
    "Oils & Vinegars": (30, 50),
    "Cereal": (10, 16),
    "Coffee": (25, 35),
    "Tea": (25, 40),
    "Pancakes & Syrup": (25, 40),
    "Chips": (7, 14),
    "Crackers & Cookies": (10, 18),
    "Nuts & Bars": (10, 18),
    "Candy": (10, 20),
    "Frozen Meals & Pizza": (10, 18),
    "Frozen Vegetables & Fruit": (12, 21),
    "Ice Cream": (12, 21),
    "Frozen Breakfast": (12, 21),
    "Water": (7, 12),
    "Juice": (7, 12),
    "Soda": (7, 14),
    "Beer": (7, 14),
    "Wine": (10, 21),
    "Paper Goods": (21, 35),
    "Laundry": (45, 60),
    "Cleaning": (30, 50),
    "Oral Care": (30, 50),
    "Bath & Body": (30, 50),
    "Health": (45, 75),
    "Diapers & Wipes": (8, 14),
    "Baby Food & Formula": (5, 9),
}

# --- stores and simulation parameters ---------------------------------------------------------------

STORE_NAMES = (
    "Maple Street Market",
    "Harbor View Grocers",
    "Cedar Grove Fresh Market",
    "Riverside Foods",
    "Oak Hill Market",
    "Lakeside Provisions",
    "Union Square Grocery",
    "Pine Ridge Market",
    "Willow Creek Foods",
    "Elm Park Grocers",
)
STORE_REGIONS = ("Portland, OR", "Seattle, WA", "Sacramento, CA", "Boise, ID", "Denver, CO")

STORE_CARRY_RATE = (0.85, 0.95)  # share of the non-staple catalog a store stocks
PRICE_OVERRIDE_SHARE = 0.05  # share of a store's items priced differently from the catalog
PRICE_OVERRIDE_RANGE = (0.85, 1.15)  # store price relative to the catalog price
ZIPF_EXPONENT = 1.0  # popularity of the item of rank r is proportional to 1 / r**ZIPF_EXPONENT
STORE_TASTE_SIGMA = 0.35  # log-normal noise on popularity per store, so best sellers differ a little

HABITUAL_ITEMS = (8, 25)  # habitual items per household
HABIT_QUANTITIES = ((1, 2, 3), (75, 20, 5))  # units bought of a habitual item, and their weights
CYCLE_JITTER = (0.85, 1.15)  # each repurchase interval is the household's cycle times this factor
MIN_TRIP_GAP_DAYS = (4, 8)  # a household shops at most this often
DUE_LOOKAHEAD_DAYS = (1.0, 3.0)  # items running out this soon are bought on the current trip
IMPULSE_ITEMS = ((0, 1, 2, 3), (30, 35, 25, 10))  # non-habitual items per trip, and their weights
AWAY_TRIP_SHARE = 0.08  # trips to a store other than the home store
SHOPPING_HOURS_UTC = (8, 20)
APP_ORDER_SHARE = 0.3  # trips whose lines were each added to the cart in the app first
CART_LEAD_MINUTES = (2, 45)  # add-to-cart before the purchase
BROWSE_TRIP_SHARE = 0.5  # trips preceded by clicks on items in the app
BROWSE_CLICKS = (1, 3)
BROWSE_BASKET_SHARE = 0.5  # clicks on an item of the coming basket; the others are on popular items
BROWSE_LEAD_MINUTES = (10, 180)  # clicks before the trip
OPEN_CART_SHARE = 0.15  # households with a cart in progress at `now` (add-to-cart, no purchase yet)
OPEN_CART_ITEMS = (1, 4)
OPEN_CART_MAX_AGE_MINUTES = 180

CENT = Decimal("0.01")

# --- the dataset ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedDataset:
    """Everything the local demo loads: catalog, stores, their assortment, users and their events."""

    stores: list[Store]
    items: list[CatalogItem]
    availability: list[StoreAvailability]
    users: list[User]
    events: list[PurchaseEvent | AddToCartEvent | ClickEvent]


def generate(*, users: int = 200, stores: int = 3, days: int = 120, seed: int = 7, now: datetime) -> SeedDataset:
    """Generate a grocery dataset: `stores` stores, the catalog, `users` households and `days` of history.

    `now` must be timezone-aware; every event happens in the `days` before it, strictly before `now`, and
    carries a UTC timestamp. The same arguments always give the same dataset. Events are sorted by time.
    Every purchased item is active and available at the store of the purchase, at that store's price.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if users < 0 or stores < 1 or days < 1:
        raise ValueError("need users >= 0, stores >= 1 and days >= 1")
    rng = random.Random(seed)
    now = now.astimezone(UTC)

    catalog = _Catalog.build()
    store_list = [
        Store(store_id=f"store-{n}", name=_store_name(n), region=STORE_REGIONS[(n - 1) % len(STORE_REGIONS)])
        for n in range(1, stores + 1)
    ]
    availability, assortments = _stock_stores(store_list, catalog, rng)

    user_list: list[User] = []
    events: list[PurchaseEvent | AddToCartEvent | ClickEvent] = []
    for n in range(1, users + 1):
        user_id, home_id = f"user-{n}", rng.choice(store_list).store_id
        user_list.append(User(user_id=user_id, home_store_id=home_id))
        habits = _household_habits(assortments[home_id], catalog, rng)
        events += _shopping_history(user_id, home_id, habits, assortments, days, now, rng)
        if rng.random() < OPEN_CART_SHARE:
            events += _open_cart(user_id, home_id, habits, now, rng)
    events.sort(key=lambda event: event["occurred_at"])
    return SeedDataset(
        stores=store_list,
        items=list(catalog.items),
        availability=availability,
        users=user_list,
        events=events,
    )


# --- catalog ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Catalog:
    items: tuple[CatalogItem, ...]
    by_id: dict[str, CatalogItem]
    line_of: dict[str, ProductLine]  # item id -> the product line it is a brand and size of

    @classmethod
    def build(cls) -> _Catalog:
        """Expand the CATALOG table into catalog items, numbered in table order."""
        items: list[CatalogItem] = []
        line_of: dict[str, ProductLine] = {}
        for department, aisles in CATALOG.items():
            for aisle, lines in aisles.items():
                for line in lines:
                    for brand, (size, base_price) in itertools.product(line.brands, line.sizes):
                        name = " ".join(part for part in (brand, line.product, size) if part)
                        brand_factor = BRAND_PRICE_FACTOR.get(brand or "", Decimal(1))
                        item = CatalogItem(
                            item_id=f"item-{len(items) + 1:04d}",
                            name=name,
                            department=department,
                            aisle=aisle,
                            brand=brand,
                            price=_shelf_price(Decimal(base_price) * brand_factor),
                            tags=sorted({*line.tags, *BRAND_TAGS.get(brand or "", ())}),
                            active=name not in DISCONTINUED_ITEMS,
                        )
                        items.append(item)
                        line_of[item.item_id] = line
        return cls(items=tuple(items), by_id={item.item_id: item for item in items}, line_of=line_of)

    def is_staple(self, item_id: str) -> bool:
        return self.line_of[item_id].staple


def _shelf_price(amount: Decimal) -> Decimal:
    """Round to a shelf price ending in 9 cents (3.432 -> 3.49), never below 0.19."""
    cents = int((amount / CENT).to_integral_value(ROUND_HALF_UP))
    return Decimal(max(19, cents // 10 * 10 + 9)) * CENT


def _store_name(number: int) -> str:
    name = STORE_NAMES[(number - 1) % len(STORE_NAMES)]
    branch = (number - 1) // len(STORE_NAMES)
    return f"{name} #{branch + 1}" if branch else name


# --- stores -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Assortment:
    """What a store sells (the active items it stocks): shelf prices, and popularity for weighted draws."""

    item_ids: list[str]
    cum_weights: list[float]
    prices: dict[str, Decimal]

    def draw(self, rng: random.Random) -> str:
        return rng.choices(self.item_ids, cum_weights=self.cum_weights)[0]


def _stock_stores(
    stores: list[Store], catalog: _Catalog, rng: random.Random
) -> tuple[list[StoreAvailability], dict[str, _Assortment]]:
    """Decide what each store stocks and at which price; staples are everywhere.

    Returns one availability row per (store, item), and per store id the assortment shoppers draw from.
    Popularity ranks staples first and is shared across stores, with some per-store noise.
    """
    ranked = [item for item in catalog.items if item.active]
    rng.shuffle(ranked)
    ranked.sort(key=lambda item: not catalog.is_staple(item.item_id))  # stable: staples first, shuffled
    popularity = {item.item_id: 1 / (rank + 1) ** ZIPF_EXPONENT for rank, item in enumerate(ranked)}

    rows: list[StoreAvailability] = []
    assortments: dict[str, _Assortment] = {}
    for store in stores:
        carry_rate = rng.uniform(*STORE_CARRY_RATE)
        prices: dict[str, Decimal] = {}
        for item in catalog.items:
            available = catalog.is_staple(item.item_id) or rng.random() < carry_rate
            list_price = Decimal(str(item.price))  # the contract's Money is a float of two decimals
            override = None
            if available and rng.random() < PRICE_OVERRIDE_SHARE:
                factor = Decimal(f"{rng.uniform(*PRICE_OVERRIDE_RANGE):.3f}")
                override = _shelf_price(list_price * factor)
                if override == list_price:
                    override = None
            rows.append(
                StoreAvailability(store_id=store.store_id, item_id=item.item_id, available=available, price=override)
            )
            if available:
                prices[item.item_id] = override or list_price
        sold = [item.item_id for item in ranked if item.item_id in prices]
        weights = (popularity[item_id] * rng.lognormvariate(0, STORE_TASTE_SIGMA) for item_id in sold)
        assortments[store.store_id] = _Assortment(
            item_ids=sold, cum_weights=list(itertools.accumulate(weights)), prices=prices
        )
    return rows, assortments


# --- households and their history -------------------------------------------------------------------


@dataclass(frozen=True)
class _Habit:
    item_id: str
    cycle_days: float
    quantity: int


def _household_habits(home: _Assortment, catalog: _Catalog, rng: random.Random) -> list[_Habit]:
    """Pick a household's habitual items from its home store: best sellers most likely, one brand and size
    per product line, each with the household's own cycle drawn from the aisle's REPURCHASE_CYCLE_DAYS."""
    wanted = rng.randint(*HABITUAL_ITEMS)
    by_line: dict[ProductLine, str] = {}
    while len(by_line) < wanted:
        item_id = home.draw(rng)
        by_line.setdefault(catalog.line_of[item_id], item_id)
    quantities, quantity_weights = HABIT_QUANTITIES
    return [
        _Habit(
            item_id=item_id,
            cycle_days=rng.uniform(*REPURCHASE_CYCLE_DAYS[catalog.by_id[item_id].aisle]),
            quantity=rng.choices(quantities, weights=quantity_weights)[0],
        )
        for item_id in by_line.values()
    ]


def _shopping_history(
    user_id: str,
    home_id: str,
    habits: list[_Habit],
    assortments: dict[str, _Assortment],
    days: int,
    now: datetime,
    rng: random.Random,
) -> list[PurchaseEvent | AddToCartEvent | ClickEvent]:
    """Simulate a household's trips over the `days` before `now`: purchases, and app events around them.

    A trip happens when habitual items run out (no sooner than the household's minimum gap between trips);
    it buys every habitual item running out soon plus a few impulse items. Trips fall on whole days
    strictly between the start of the window and the day of `now`, so every event is inside the window.
    """
    other_store_ids = [store_id for store_id in assortments if store_id != home_id]
    min_gap = rng.randint(*MIN_TRIP_GAP_DAYS)
    lookahead = rng.uniform(*DUE_LOOKAHEAD_DAYS)
    due = {habit.item_id: rng.uniform(0, habit.cycle_days) for habit in habits}  # day each item runs out
    first_date = (now - timedelta(days=days)).date()
    impulse_counts, impulse_weights = IMPULSE_ITEMS

    events: list[PurchaseEvent | AddToCartEvent | ClickEvent] = []
    trip_day, trip_number = 1 - min_gap, 0
    # The next trip: the first day the soonest item is within the lookahead, but not before the minimum gap.
    while (trip_day := max(trip_day + min_gap, math.floor(min(due.values()) - lookahead) + 1)) < days:
        trip_number += 1
        store_id = home_id
        if other_store_ids and rng.random() < AWAY_TRIP_SHARE:
            store_id = rng.choice(other_store_ids)
        store = assortments[store_id]

        basket: dict[str, int] = {}  # item id -> quantity
        for habit in habits:
            if due[habit.item_id] <= trip_day + lookahead and habit.item_id in store.prices:
                basket[habit.item_id] = habit.quantity
                due[habit.item_id] = trip_day + habit.cycle_days * rng.uniform(*CYCLE_JITTER)
        impulses = rng.choices(impulse_counts, weights=impulse_weights)[0]
        if not basket:  # an away store stocks none of the items due: the household buys something else
            impulses = max(impulses, 1)
        while impulses:
            item_id = store.draw(rng)
            if item_id not in basket and item_id not in due:  # habitual items keep their own rhythm
                basket[item_id] = 1
                impulses -= 1

        hour = rng.randint(*SHOPPING_HOURS_UTC)
        at = datetime.combine(
            first_date + timedelta(days=trip_day),
            time(hour, rng.randrange(60), rng.randrange(60)),
            tzinfo=UTC,
        )
        events.append(
            PurchaseEvent(
                type="purchase",
                event_id=_event_id(rng),
                user_id=user_id,
                store_id=store_id,
                occurred_at=at,
                order_id=f"order-{user_id}-{trip_number}",
                items=[
                    PurchaseLine(item_id=item_id, quantity=quantity, unit_price=float(store.prices[item_id]))
                    for item_id, quantity in basket.items()
                ],
            )
        )
        events += _app_events_before(user_id, store_id, list(basket.items()), at, store, rng)
    return events


def _app_events_before(
    user_id: str,
    store_id: str,
    basket: list[tuple[str, int]],
    purchased_at: datetime,
    store: _Assortment,
    rng: random.Random,
) -> list[AddToCartEvent | ClickEvent]:
    """Clicks and add-to-carts that led up to a purchase: browsing for some trips, a cart for app orders."""
    events: list[AddToCartEvent | ClickEvent] = []
    if rng.random() < BROWSE_TRIP_SHARE:
        for _ in range(rng.randint(*BROWSE_CLICKS)):
            item_id = rng.choice(basket)[0] if rng.random() < BROWSE_BASKET_SHARE else store.draw(rng)
            events.append(
                ClickEvent(
                    type="click",
                    event_id=_event_id(rng),
                    user_id=user_id,
                    store_id=store_id,
                    occurred_at=purchased_at - timedelta(minutes=rng.randint(*BROWSE_LEAD_MINUTES)),
                    item_id=item_id,
                )
            )
    if rng.random() < APP_ORDER_SHARE:
        for item_id, quantity in basket:
            events.append(
                AddToCartEvent(
                    type="add_to_cart",
                    event_id=_event_id(rng),
                    user_id=user_id,
                    store_id=store_id,
                    occurred_at=purchased_at - timedelta(minutes=rng.randint(*CART_LEAD_MINUTES)),
                    item_id=item_id,
                    quantity=quantity,
                )
            )
    return events


def _open_cart(
    user_id: str, home_id: str, habits: list[_Habit], now: datetime, rng: random.Random
) -> list[AddToCartEvent]:
    """A cart in progress at `now`: a few habitual items added at the home store in the last hours."""
    picked = rng.sample(habits, k=min(len(habits), rng.randint(*OPEN_CART_ITEMS)))
    return [
        AddToCartEvent(
            type="add_to_cart",
            event_id=_event_id(rng),
            user_id=user_id,
            store_id=home_id,
            occurred_at=now - timedelta(minutes=rng.randint(1, OPEN_CART_MAX_AGE_MINUTES)),
            item_id=habit.item_id,
            quantity=habit.quantity,
        )
        for habit in picked
    ]


def _event_id(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)
